//! Rendering tests: decode the PNGs and check geometry, orientation and colours.
#![allow(clippy::unwrap_used)]

use gridflow_plot::{DateParts, Error, LinePlot, MISSING_COLOR, MapPlot, viridis};

struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(bytes: &[u8]) -> Self {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        Self {
            width: info.width as usize,
            height: info.height as usize,
            rgb: buf,
        }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Bounding box (x0, y0, x1, y1) of pixels matching `f` inside `region` (same form).
    fn bbox(
        &self,
        region: (usize, usize, usize, usize),
        f: impl Fn([u8; 3]) -> bool,
    ) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for y in region.1..=region.3.min(self.height - 1) {
            for x in region.0..=region.2.min(self.width - 1) {
                if f(self.px(x, y)) {
                    b = Some(match b {
                        None => (x, y, x, y),
                        Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                    });
                }
            }
        }
        b
    }

    /// The plot frame (left, top, right, bottom): rows and columns mostly made of the
    /// 1-pixel axis colour. The first two such columns are the plot's; a colorbar frame
    /// may follow.
    fn frame(&self) -> (usize, usize, usize, usize) {
        let axis = [0x40, 0x40, 0x40];
        let rows: Vec<usize> = (0..self.height)
            .filter(|&y| {
                (0..self.width).filter(|&x| self.px(x, y) == axis).count() > self.width / 2
            })
            .collect();
        let cols: Vec<usize> = (0..self.width)
            .filter(|&x| {
                (0..self.height).filter(|&y| self.px(x, y) == axis).count() > self.height / 2
            })
            .collect();
        assert!(
            rows.len() >= 2 && cols.len() >= 2,
            "frame not found: rows {rows:?} cols {cols:?}"
        );
        (cols[0], rows[0], cols[1], *rows.last().unwrap())
    }
}

fn is_line(p: [u8; 3]) -> bool {
    i32::from(p[2]) - i32::from(p[0]) > 40
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    (0..3).all(|i| (i32::from(a[i]) - i32::from(b[i])).abs() <= tol)
}

fn lightness(c: [u8; 3]) -> f64 {
    0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])
}

/// y = −(x − 140)² on x = 0..=200: maximum at 70% of the axis, minimum at the left end.
fn parabola() -> LinePlot {
    let x: Vec<f64> = (0..=200).map(f64::from).collect();
    let y: Vec<f64> = x.iter().map(|v| -(v - 140.0).powi(2)).collect();
    LinePlot::new("Parabola", x, y)
        .with_x_label("x [m]")
        .with_y_label("y [m²]")
}

#[test]
fn line_png_has_requested_size() {
    let img = Image::decode(&parabola().to_png(640, 360).unwrap());
    assert_eq!((img.width, img.height), (640, 360));
    let img = Image::decode(&parabola().to_png(1000, 500).unwrap());
    assert_eq!((img.width, img.height), (1000, 500));
}

#[test]
fn line_reaches_top_at_max_and_bottom_at_min() {
    let img = Image::decode(&parabola().to_png(800, 400).unwrap());
    let (left, top, right, bottom) = img.frame();
    let (pw, ph) = ((right - left) as f64, (bottom - top) as f64);
    // Topmost and bottommost rows with line pixels, and the mean column of each.
    let rows: Vec<(usize, f64)> = (top + 1..bottom)
        .filter_map(|y| {
            let xs: Vec<usize> = (left + 1..right)
                .filter(|&x| is_line(img.px(x, y)))
                .collect();
            (!xs.is_empty()).then(|| (y, xs.iter().sum::<usize>() as f64 / xs.len() as f64))
        })
        .collect();
    let (ty, tx) = rows[0];
    let (by, bx) = *rows.last().unwrap();
    // The y range is padded by 5% of the data range on each side: 0.05 / 1.1 of the height.
    let pad = ph * 0.05 / 1.1;
    assert!(
        (ty as f64 - top as f64 - pad).abs() < 4.0,
        "top of line at {ty}, frame top {top}"
    );
    assert!(
        (bottom as f64 - by as f64 - pad).abs() < 4.0,
        "bottom of line at {by}, frame bottom {bottom}"
    );
    let fx = (tx - left as f64) / pw;
    assert!(
        (fx - 0.7).abs() < 0.03,
        "maximum drawn at {fx} of the width"
    );
    assert!(
        (bx - left as f64) / pw < 0.02,
        "minimum drawn at column {bx}"
    );
}

#[test]
fn nan_values_break_the_line() {
    let mut plot = parabola();
    for v in &mut plot.y[90..110] {
        *v = f64::NAN;
    }
    let img = Image::decode(&plot.to_png(800, 400).unwrap());
    let (left, top, right, bottom) = img.frame();
    let pw = (right - left) as f64;
    let column_has_line = |x: usize| (top + 1..bottom).any(|y| is_line(img.px(x, y)));
    // x = 92..107 lie well inside the gap (0.46..0.535 of the axis).
    for x in (left as f64 + pw * 0.465) as usize..(left as f64 + pw * 0.53) as usize {
        assert!(
            !column_has_line(x),
            "line drawn inside the NaN gap at column {x}"
        );
    }
    assert!(column_has_line((left as f64 + pw * 0.40) as usize));
    assert!(column_has_line((left as f64 + pw * 0.60) as usize));
}

/// A 4 × 12 grid: a high value in the northernmost row, a middle value at 90°E elsewhere.
fn marker_map(descending_lat: bool, pm180: bool) -> (MapPlot, f64) {
    let mut lat = vec![-67.5, -22.5, 22.5, 67.5];
    if descending_lat {
        lat.reverse();
    }
    let lon: Vec<f64> = (0..12)
        .map(|j| f64::from(j) * 30.0 + if pm180 { -180.0 } else { 0.0 })
        .collect();
    let mut values = Vec::new();
    for &la in &lat {
        for &lo in &lon {
            values.push(if la > 60.0 {
                100.0
            } else if lo == 90.0 {
                50.0
            } else {
                0.0
            });
        }
    }
    // Where 90°E should sit across the map: edges run from the first lon − 15°.
    let lon0 = lon[0] - 15.0;
    let frac = (90.0 - lon0) / 360.0;
    (
        MapPlot::new("markers", lat, lon, values).with_colorbar_label("v [1]"),
        frac,
    )
}

#[test]
fn maps_are_north_up_and_east_right_for_any_coordinate_order() {
    for (descending, pm180) in [(false, false), (true, false), (false, true), (true, true)] {
        let (map, frac) = marker_map(descending, pm180);
        let img = Image::decode(&map.to_png(1000, 560).unwrap());
        // Only look inside the map frame, left of the colorbar.
        let map = img.frame();
        let yellow = viridis(1.0);
        let purple = viridis(0.0);
        let (_, ytop, _, ybot) = img.bbox(map, |p| close(p, yellow, 6)).unwrap();
        let (mx0, ptop, mx1, pbot) = img.bbox(map, |p| close(p, purple, 6)).unwrap();
        let case = format!("descending={descending} pm180={pm180}");
        // The high row fills the top quarter of the map: above all the purple cells.
        assert!(
            ybot < ptop,
            "{case}: yellow rows {ytop}..{ybot}, purple from {ptop}"
        );
        let map_h = (pbot - ytop) as f64;
        assert!(((ybot - ytop) as f64 / map_h - 0.25).abs() < 0.03, "{case}");
        // The 90°E column sits where longitude grows eastwards from the left edge.
        let teal = viridis(0.5);
        let (tx0, _, tx1, _) = img.bbox(map, |p| close(p, teal, 6)).unwrap();
        let centre = ((tx0 + tx1) as f64 / 2.0 - mx0 as f64) / (mx1 - mx0) as f64;
        assert!(
            (centre - frac).abs() < 0.02,
            "{case}: 90°E at {centre}, want {frac}"
        );
    }
}

#[test]
fn nan_cells_are_grey_and_get_a_legend_swatch() {
    let (mut map, _) = marker_map(false, false);
    // The southernmost row (first, ascending) is missing.
    for v in &mut map.values[..12] {
        *v = f64::NAN;
    }
    let img = Image::decode(&map.to_png(1000, 560).unwrap());
    let frame = img.frame();
    let (_, gtop, _, gbot) = img.bbox(frame, |p| p == MISSING_COLOR).unwrap();
    let (_, ptop, _, pbot) = img.bbox(frame, |p| close(p, viridis(0.0), 6)).unwrap();
    assert!(
        gtop > pbot,
        "grey rows {gtop}..{gbot} should be below the data rows {ptop}..{pbot}"
    );
    // The swatch next to the colorbar.
    let right_of_map = (frame.2 + 1, frame.1, img.width - 1, frame.3);
    assert!(img.bbox(right_of_map, |p| p == MISSING_COLOR).is_some());
    let svg = map.to_svg(1000, 560).unwrap();
    assert!(svg.contains(">missing</text>"));

    let (complete, _) = marker_map(false, false);
    let img = Image::decode(&complete.to_png(1000, 560).unwrap());
    let inside = img.frame();
    assert!(
        img.bbox(inside, |p| p == MISSING_COLOR).is_none(),
        "grey without NaN"
    );
}

#[test]
fn colorbar_runs_monotonically_through_the_colormap() {
    let (map, _) = marker_map(false, false);
    let img = Image::decode(&map.to_png(1000, 560).unwrap());
    // Colorbar columns: right of the map, with many strongly coloured pixels.
    let coloured = |p: [u8; 3]| {
        let (mx, mn) = (p.iter().max().unwrap(), p.iter().min().unwrap());
        mx - mn > 60
    };
    let (_, _, map_right, _) = img.frame();
    let cols: Vec<usize> = (map_right + 1..img.width)
        .filter(|&x| (0..img.height).filter(|&y| coloured(img.px(x, y))).count() > img.height / 3)
        .collect();
    assert!(cols.len() >= 10, "colorbar not found: {cols:?}");
    let x = cols[cols.len() / 2];
    let rows: Vec<usize> = (0..img.height)
        .filter(|&y| coloured(img.px(x, y)))
        .collect();
    let (y0, y1) = (rows[0], *rows.last().unwrap());
    assert!(
        close(img.px(x, y0), viridis(1.0), 8),
        "top {:?}",
        img.px(x, y0)
    );
    assert!(
        close(img.px(x, y1), viridis(0.0), 8),
        "bottom {:?}",
        img.px(x, y1)
    );
    let mut prev = f64::INFINITY;
    for y in y0..=y1 {
        let l = lightness(img.px(x, y));
        assert!(
            l <= prev + 1.0,
            "lightness rises at row {y}: {l} after {prev}"
        );
        prev = l;
    }
}

#[test]
fn svg_output_is_well_formed() {
    let svg = parabola().to_svg(800, 400).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("800"));
    let texts: Vec<String> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    assert!(texts.contains(&"Parabola".to_string()));
    assert!(texts.contains(&"y [m²]".to_string()));
    assert!(texts.contains(&"100".to_string()), "{texts:?}");
    assert!(root.descendants().any(|n| n.has_tag_name("path")));

    let (map, _) = marker_map(true, true);
    let svg = map
        .with_colorbar_label("a < b & \"c\"")
        .to_svg(1000, 560)
        .unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let image = doc.descendants().find(|n| n.has_tag_name("image")).unwrap();
    let href = image
        .attribute(("http://www.w3.org/1999/xlink", "href"))
        .unwrap();
    assert!(href.starts_with("data:image/png;base64,iVBORw0KGgo"));
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for label in [
        "a < b & \"c\"",
        "60°N",
        "30°S",
        "60°E",
        "120°W",
        "0°",
        "180°",
    ] {
        assert!(texts.contains(&label), "{label} missing from {texts:?}");
    }
}

#[test]
fn time_axis_plot_labels_calendar_boundaries() {
    // 360_day calendar, 6-hourly from 1850-02-24 06:00 for ten days: Feb 30 exists.
    let dates: Vec<DateParts> = (0..40u32)
        .map(|i| {
            let h = 6 + 6 * i;
            let d = 53 + h / 24; // day of the 360-day year, 0-based
            DateParts::new(1850, d / 30 + 1, d % 30 + 1, h % 24, 0)
        })
        .collect();
    let x: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.25).collect();
    let y: Vec<f64> = x.iter().map(|v| v.sin()).collect();
    let plot = LinePlot::new("", x, y)
        .with_time_axis(dates)
        .with_y_label("v [1]");
    let svg = plot.to_svg(1000, 500).unwrap();
    for label in ["02-25", "02-29", "02-30", "03-01", "03-04", "1850"] {
        assert!(svg.contains(&format!(">{label}</text>")), "{label} missing");
    }
    assert_eq!(
        svg.matches(">1850</text>").count(),
        1,
        "year context shown once"
    );
}

#[test]
fn all_nan_data_renders_with_a_note() {
    let plot = LinePlot::new("empty", vec![0.0, 1.0, 2.0], vec![f64::NAN; 3]);
    let img = Image::decode(&plot.to_png(600, 300).unwrap());
    let (left, top, right, bottom) = img.frame();
    assert!((top + 1..bottom).all(|y| (left + 1..right).all(|x| !is_line(img.px(x, y)))));
    assert!(plot.to_svg(600, 300).unwrap().contains(">no data</text>"));

    let map = MapPlot::new("empty", vec![0.0], vec![0.0, 10.0], vec![f64::NAN; 2]);
    let svg = map.to_svg(600, 400).unwrap();
    assert!(svg.contains(">no data</text>") && svg.contains(">missing</text>"));
    let img = Image::decode(&map.to_png(600, 400).unwrap());
    let inside = img.frame();
    let all = img.bbox(inside, |p| p == MISSING_COLOR).unwrap();
    assert!(
        all.2 - all.0 > (inside.2 - inside.0) * 9 / 10,
        "map area not grey"
    );
}

#[test]
fn invalid_input_gives_errors_that_name_the_problem() {
    let e = LinePlot::new("t", vec![], vec![])
        .to_png(400, 300)
        .unwrap_err();
    assert!(matches!(e, Error::Empty { what: "x" }), "{e}");

    let e = LinePlot::new("t", vec![1.0, 2.0, 3.0], vec![1.0])
        .to_png(400, 300)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains('3') && msg.contains('1') && msg.contains("`y`"),
        "{msg}"
    );

    let e = LinePlot::new("t", vec![1.0, 2.0], vec![1.0, 2.0])
        .with_time_axis(vec![DateParts::ymd(2000, 1, 1)])
        .to_svg(400, 300)
        .unwrap_err();
    assert!(e.to_string().contains("`dates` has 1"), "{e}");

    let e = LinePlot::new("t", vec![1.0], vec![1.0])
        .with_time_axis(vec![DateParts::ymd(2000, 13, 1)])
        .to_svg(400, 300)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidDate { index: 0, .. }), "{e}");

    let e = parabola().to_png(0, 300).unwrap_err();
    assert!(matches!(e, Error::InvalidSize { width: 0, .. }), "{e}");

    let e = MapPlot::new("m", vec![0.0, 1.0], vec![0.0, 1.0, 2.0], vec![0.0; 5])
        .to_png(400, 300)
        .unwrap_err();
    assert!(
        e.to_string().contains("has 5 entries") && e.to_string().contains("needs 6"),
        "{e}"
    );

    let e = MapPlot::new("m", vec![], vec![0.0], vec![])
        .to_png(400, 300)
        .unwrap_err();
    assert!(matches!(e, Error::Empty { what: "lat" }), "{e}");

    let e = MapPlot::new("m", vec![95.0], vec![0.0], vec![1.0])
        .to_png(400, 300)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidCoordinate {
                what: "lat",
                index: 0,
                ..
            }
        ),
        "{e}"
    );

    let e = MapPlot::new("m", vec![0.0], vec![0.0], vec![1.0])
        .with_color_range(2.0, 1.0)
        .to_png(400, 300)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidColorRange { .. }), "{e}");
}

#[test]
fn save_picks_the_format_from_the_extension() {
    let dir = std::env::temp_dir().join(format!("gridflow-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = parabola();
    let png_path = dir.join("line.png");
    plot.save(&png_path).unwrap();
    let img = Image::decode(&std::fs::read(&png_path).unwrap());
    assert_eq!(
        (img.width, img.height),
        (
            LinePlot::DEFAULT_WIDTH as usize,
            LinePlot::DEFAULT_HEIGHT as usize
        )
    );
    let svg_path = dir.join("line.SVG");
    plot.save(&svg_path).unwrap();
    assert!(
        std::fs::read_to_string(&svg_path)
            .unwrap()
            .starts_with("<?xml")
    );

    let (map, _) = marker_map(false, false);
    let map_path = dir.join("map.png");
    map.save(&map_path).unwrap();
    let img = Image::decode(&std::fs::read(&map_path).unwrap());
    assert_eq!((img.width, img.height), (1000, 560));

    let e = plot.save(&dir.join("line.jpg")).unwrap_err();
    assert!(matches!(e, Error::UnknownExtension { .. }));
    assert!(e.to_string().contains("line.jpg"), "{e}");
    let e = plot.save(&dir.join("no-extension")).unwrap_err();
    assert!(matches!(e, Error::UnknownExtension { .. }), "{e}");

    let missing = dir.join("no-such-dir").join("line.png");
    let e = plot.save(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dense_series_renders() {
    // 14,400 points (5 years, 3-hourly, 360_day) with NaN gaps.
    let n = 14_400u32;
    let x: Vec<f64> = (0..n).map(|i| f64::from(i) / 8.0).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            if i % 997 == 0 {
                f64::NAN
            } else {
                (f64::from(i) / 300.0).sin()
            }
        })
        .collect();
    let dates: Vec<DateParts> = (0..n)
        .map(|i| {
            let d = i / 8;
            DateParts::new(
                1850 + (d / 360) as i32,
                (d % 360) / 30 + 1,
                d % 30 + 1,
                (i % 8) * 3,
                0,
            )
        })
        .collect();
    let plot = LinePlot::new("dense", x, y).with_time_axis(dates);
    let svg = plot.to_svg(1000, 500).unwrap();
    for year in ["1851-01", "1854-07"] {
        assert!(svg.contains(&format!(">{year}</text>")), "{year}");
    }
    // Decimated: far fewer path vertices than points.
    let vertices = svg.matches(" L").count();
    assert!(vertices < 6000, "{vertices} vertices");
    Image::decode(&plot.to_png(1000, 500).unwrap());
}
