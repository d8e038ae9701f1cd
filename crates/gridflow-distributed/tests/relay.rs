//! Clients behind a gateway: a stand-in router on 127.0.0.1 that reads the routing
//! preamble and relays bytes to one cluster's scheduler (as `gridflow gateway` does),
//! results gathered and values scattered through the scheduler (`Hello::Relay`), relays
//! to anything but the cluster's workers refused, and the scheduler's `Activity`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly on purpose.

use gridflow_distributed::auth::{MAX_ROUTE_ID, ROUTE_MAGIC, relayed_data_address};
use gridflow_distributed::{Client, LocalCluster, LocalClusterOptions, Security};
use gridflow_runtime::conformance::{num, tree};
use gridflow_runtime::{Executor, LocalExecutor};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const NODE: &str = env!("CARGO_BIN_EXE_gridflow-test-node");

/// Routes cluster `id` to `target` (`host:port`); other ids are refused.
fn router(id: &'static str, target: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let target = target.clone();
            std::thread::spawn(move || {
                let mut head = [0u8; 6];
                s.read_exact(&mut head).unwrap();
                assert_eq!(&head[..4], ROUTE_MAGIC);
                let n = usize::from(u16::from_le_bytes([head[4], head[5]]));
                assert!(n <= MAX_ROUTE_ID);
                let mut got = vec![0u8; n];
                s.read_exact(&mut got).unwrap();
                if got != id.as_bytes() {
                    let msg = b"no such cluster";
                    let mut out = vec![1u8];
                    out.extend_from_slice(&(msg.len() as u16).to_le_bytes());
                    out.extend_from_slice(msg);
                    let _ = s.write_all(&out);
                    return;
                }
                let mut up = TcpStream::connect(&target).unwrap();
                s.write_all(&[0]).unwrap();
                let (mut s2, mut up2) = (s.try_clone().unwrap(), up.try_clone().unwrap());
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut up2);
                    let _ = up2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up, &mut s);
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
            });
        }
    });
    address
}

#[test]
fn gathers_through_the_scheduler_and_reports_activity() {
    let sec = Security::none().with_token("relay-secret").unwrap();
    let c = LocalCluster::with_options(LocalClusterOptions {
        n_workers: 2,
        threads_per_worker: 1,
        program: Some(NODE.into()),
        security: sec.clone(),
        ..LocalClusterOptions::default()
    })
    .unwrap();
    let hostport = c.address().trim_start_matches("tcp://").to_owned();
    let gw = router("c1", hostport);
    let address = format!("gateway://{gw}/c1");
    let client = Client::connect_with(&address, sec.clone()).unwrap();

    // Computed through the router: outputs gathered from the workers via the scheduler.
    let (g, out, _) = tree(40, 64);
    let want = LocalExecutor::threads(1)
        .run(&g, std::slice::from_ref(&out))
        .unwrap();
    let got = client.run(&g, std::slice::from_ref(&out)).unwrap();
    assert_eq!(num(&got[0]), num(&want[0]));

    // Scattered through the scheduler, and read back the same way.
    let values: Vec<Vec<u8>> = (1..=3u8).map(|v| vec![v; 5000]).collect();
    let futures = client.scatter(values.clone(), None).unwrap();
    for (f, v) in futures.iter().zip(&values) {
        assert_eq!(&*f.result().unwrap(), v);
    }

    // Just computed: not idle, nothing pending; then idle time grows.
    let a = client.activity().unwrap();
    assert_eq!(a.pending_tasks, 0);
    std::thread::sleep(Duration::from_millis(300));
    let b = client.activity().unwrap();
    assert!(b.idle_ms >= a.idle_ms + 250, "{a:?} then {b:?}");

    // The scheduler relays only to its own workers' data ports.
    let direct = Client::connect_with(&c.address(), sec.clone()).unwrap();
    let workers = direct.workers().unwrap();
    assert!(
        relayed_data_address(&address, &workers[0].address).contains("/relay/"),
        "a gateway address's data ports are relayed"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bogus = relayed_data_address(&address, "127.0.0.1:9");
    let e = rt
        .block_on(gridflow_distributed::auth::connect(&bogus, &sec))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("will not relay") && e.contains("not the data address of a worker"),
        "{e}"
    );
    let ok = relayed_data_address(&address, &workers[0].address);
    assert!(
        rt.block_on(gridflow_distributed::auth::connect(&ok, &sec))
            .is_ok()
    );

    // An unknown cluster id is refused by the router, with its message.
    let e = Client::connect_with(&format!("gateway://{gw}/other"), sec).unwrap_err();
    assert!(e.to_string().contains("no such cluster"), "{e}");
}
