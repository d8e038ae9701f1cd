//! Splitting source into tokens, following Python's tokenizer for the supported subset.

use crate::error::text_of;
use crate::{ParseError, Span};

/// A token kind with its decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Name(String),
    Kw(Kw),
    Int(i64),
    Float(f64),
    Str(String),
    Punct(Punct),
    /// A line break outside brackets (it ends the expression, as in Python).
    Newline,
    Eof,
    /// Lexing stopped here; the parser reports this error when it reaches it.
    Error(ParseError),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Python's keywords; the ones outside the grammar are kept so errors can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    False,
    None,
    True,
    And,
    As,
    Assert,
    Async,
    Await,
    Break,
    Class,
    Continue,
    Def,
    Del,
    Elif,
    Else,
    Except,
    Finally,
    For,
    From,
    Global,
    If,
    Import,
    In,
    Is,
    Lambda,
    Nonlocal,
    Not,
    Or,
    Pass,
    Raise,
    Return,
    Try,
    While,
    With,
    Yield,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("False", Kw::False),
    ("None", Kw::None),
    ("True", Kw::True),
    ("and", Kw::And),
    ("as", Kw::As),
    ("assert", Kw::Assert),
    ("async", Kw::Async),
    ("await", Kw::Await),
    ("break", Kw::Break),
    ("class", Kw::Class),
    ("continue", Kw::Continue),
    ("def", Kw::Def),
    ("del", Kw::Del),
    ("elif", Kw::Elif),
    ("else", Kw::Else),
    ("except", Kw::Except),
    ("finally", Kw::Finally),
    ("for", Kw::For),
    ("from", Kw::From),
    ("global", Kw::Global),
    ("if", Kw::If),
    ("import", Kw::Import),
    ("in", Kw::In),
    ("is", Kw::Is),
    ("lambda", Kw::Lambda),
    ("nonlocal", Kw::Nonlocal),
    ("not", Kw::Not),
    ("or", Kw::Or),
    ("pass", Kw::Pass),
    ("raise", Kw::Raise),
    ("return", Kw::Return),
    ("try", Kw::Try),
    ("while", Kw::While),
    ("with", Kw::With),
    ("yield", Kw::Yield),
];

impl Kw {
    fn from_str(s: &str) -> Option<Kw> {
        KEYWORDS.iter().find(|(k, _)| *k == s).map(|(_, kw)| *kw)
    }

    pub fn text(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, kw)| *kw == self)
            .map_or("?", |(k, _)| k)
    }

    /// Keywords that only start statements.
    pub fn is_statement(self) -> bool {
        matches!(
            self,
            Kw::Assert
                | Kw::Break
                | Kw::Class
                | Kw::Continue
                | Kw::Def
                | Kw::Del
                | Kw::Elif
                | Kw::Except
                | Kw::Finally
                | Kw::From
                | Kw::Global
                | Kw::Import
                | Kw::Nonlocal
                | Kw::Pass
                | Kw::Raise
                | Kw::Return
                | Kw::Try
                | Kw::While
                | Kw::With
        )
    }
}

/// True if `name` is a Python keyword (so it cannot be a name or attribute).
pub fn is_keyword(name: &str) -> bool {
    Kw::from_str(name).is_some()
}

/// Operators and delimiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Dot,
    Ellipsis,
    Semicolon,
    Assign,
    Walrus,
    Arrow,
    AugAssign(&'static str),
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    LShift,
    RShift,
    Plus,
    Minus,
    Star,
    DoubleStar,
    Slash,
    DoubleSlash,
    Percent,
    At,
    Tilde,
    Amp,
    Pipe,
    Caret,
}

impl Punct {
    pub fn text(self) -> &'static str {
        match self {
            Punct::LParen => "(",
            Punct::RParen => ")",
            Punct::LBracket => "[",
            Punct::RBracket => "]",
            Punct::LBrace => "{",
            Punct::RBrace => "}",
            Punct::Comma => ",",
            Punct::Colon => ":",
            Punct::Dot => ".",
            Punct::Ellipsis => "...",
            Punct::Semicolon => ";",
            Punct::Assign => "=",
            Punct::Walrus => ":=",
            Punct::Arrow => "->",
            Punct::AugAssign(s) => s,
            Punct::Eq => "==",
            Punct::NotEq => "!=",
            Punct::Lt => "<",
            Punct::Le => "<=",
            Punct::Gt => ">",
            Punct::Ge => ">=",
            Punct::LShift => "<<",
            Punct::RShift => ">>",
            Punct::Plus => "+",
            Punct::Minus => "-",
            Punct::Star => "*",
            Punct::DoubleStar => "**",
            Punct::Slash => "/",
            Punct::DoubleSlash => "//",
            Punct::Percent => "%",
            Punct::At => "@",
            Punct::Tilde => "~",
            Punct::Amp => "&",
            Punct::Pipe => "|",
            Punct::Caret => "^",
        }
    }
}

/// Longest first, so `**=` wins over `**` and `*`.
const PUNCTS: &[(&str, Punct)] = &[
    ("**=", Punct::AugAssign("**=")),
    ("//=", Punct::AugAssign("//=")),
    (">>=", Punct::AugAssign(">>=")),
    ("<<=", Punct::AugAssign("<<=")),
    ("...", Punct::Ellipsis),
    ("+=", Punct::AugAssign("+=")),
    ("-=", Punct::AugAssign("-=")),
    ("*=", Punct::AugAssign("*=")),
    ("/=", Punct::AugAssign("/=")),
    ("%=", Punct::AugAssign("%=")),
    ("@=", Punct::AugAssign("@=")),
    ("&=", Punct::AugAssign("&=")),
    ("|=", Punct::AugAssign("|=")),
    ("^=", Punct::AugAssign("^=")),
    ("**", Punct::DoubleStar),
    ("//", Punct::DoubleSlash),
    ("<<", Punct::LShift),
    (">>", Punct::RShift),
    ("<=", Punct::Le),
    (">=", Punct::Ge),
    ("==", Punct::Eq),
    ("!=", Punct::NotEq),
    (":=", Punct::Walrus),
    ("->", Punct::Arrow),
    ("(", Punct::LParen),
    (")", Punct::RParen),
    ("[", Punct::LBracket),
    ("]", Punct::RBracket),
    ("{", Punct::LBrace),
    ("}", Punct::RBrace),
    (",", Punct::Comma),
    (":", Punct::Colon),
    (".", Punct::Dot),
    (";", Punct::Semicolon),
    ("=", Punct::Assign),
    ("<", Punct::Lt),
    (">", Punct::Gt),
    ("+", Punct::Plus),
    ("-", Punct::Minus),
    ("*", Punct::Star),
    ("/", Punct::Slash),
    ("%", Punct::Percent),
    ("@", Punct::At),
    ("~", Punct::Tilde),
    ("&", Punct::Amp),
    ("|", Punct::Pipe),
    ("^", Punct::Caret),
];

pub(crate) fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Produces tokens on demand, so an error late in the input is only reported if the
/// parser gets that far (as CPython does).
pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Open brackets; line breaks inside brackets are plain whitespace.
    depth: usize,
    /// End of the last token produced: where end-of-input errors point.
    last_end: usize,
    /// Whether the last token was a line break (or there was none yet), so that blank
    /// lines yield no further line-break tokens.
    at_line_start: bool,
    /// Once `Eof` or an error is produced, it is produced forever.
    finished: Option<Token>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            depth: 0,
            last_end: 0,
            at_line_start: true,
            finished: None,
        }
    }

    /// The next token; after `Eof` or an `Error` token, that token again.
    pub fn next(&mut self) -> Token {
        if let Some(token) = &self.finished {
            return token.clone();
        }
        loop {
            let token = match self.next_token() {
                Ok(None) => continue,
                Ok(Some(token)) => token,
                Err(err) => Token {
                    span: err.span,
                    tok: Tok::Error(err),
                },
            };
            if matches!(token.tok, Tok::Eof | Tok::Error(_)) {
                self.finished = Some(token.clone());
            } else {
                self.last_end = token.span.end;
                self.at_line_start = token.tok == Tok::Newline;
            }
            return token;
        }
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        text_of(self.src, self.pos, self.src.len()).chars().next()
    }

    fn peek_nth(&self, n: usize) -> Option<char> {
        text_of(self.src, self.pos, self.src.len()).chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos = self.pos.saturating_add(c.len_utf8());
        Some(c)
    }

    fn span_from(&self, start: usize) -> Span {
        Span::new(start, self.pos)
    }

    /// The next token, or `None` for a line break that is not significant.
    fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            // Point end-of-input errors just after the last token, not at trailing blanks.
            return Ok(Some(Token {
                tok: Tok::Eof,
                span: Span::new(self.last_end, self.last_end),
            }));
        };
        let tok = if c == '\n' {
            self.bump();
            if self.depth > 0 || self.at_line_start {
                return Ok(None);
            }
            Tok::Newline
        } else if c.is_ascii_digit()
            || (c == '.' && self.peek_nth(1).is_some_and(|d| d.is_ascii_digit()))
        {
            self.number()?
        } else if c == '"' || c == '\'' {
            self.string(start)?
        } else if is_ident_start(c) {
            while self.peek().is_some_and(is_ident_continue) {
                self.bump();
            }
            let word = text_of(self.src, start, self.pos);
            if matches!(self.peek(), Some('"' | '\'')) && is_string_prefix(word) {
                self.string(start)?
            } else if let Some(kw) = Kw::from_str(word) {
                Tok::Kw(kw)
            } else {
                Tok::Name(word.to_owned())
            }
        } else {
            self.punct(c)?
        };
        Ok(Some(Token {
            tok,
            span: self.span_from(start),
        }))
    }

    /// Skips blanks, comments and backslash line continuations (not line breaks).
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\x0c') => {
                    self.bump();
                }
                Some('\n') if self.depth > 0 => {
                    self.bump();
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some('\\') => {
                    self.bump();
                    if self.peek() == Some('\r') {
                        self.bump();
                    }
                    let after = self.pos;
                    if self.bump() != Some('\n') {
                        return Err(ParseError::new(
                            "unexpected character after line continuation character '\\'",
                            Span::new(after, self.pos),
                        ));
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn punct(&mut self, c: char) -> Result<Tok, ParseError> {
        let start = self.pos;
        let rest = text_of(self.src, start, self.src.len());
        let Some((text, punct)) = PUNCTS.iter().find(|(text, _)| rest.starts_with(text)) else {
            self.bump();
            let what = if c.is_ascii_graphic() {
                format!("unexpected character '{c}'")
            } else {
                format!("unexpected character {:?} (U+{:04X})", c, u32::from(c))
            };
            return Err(ParseError::new(what, self.span_from(start)));
        };
        self.pos = self.pos.saturating_add(text.len());
        match punct {
            Punct::LParen | Punct::LBracket | Punct::LBrace => {
                self.depth = self.depth.saturating_add(1)
            }
            Punct::RParen | Punct::RBracket | Punct::RBrace => {
                self.depth = self.depth.saturating_sub(1);
            }
            _ => {}
        }
        Ok(Tok::Punct(*punct))
    }

    /// Consumes `digit ('_'? digit)*` in `radix`; returns whether any digit was read.
    fn digits(&mut self, radix: u32) -> bool {
        let mut any = false;
        loop {
            match self.peek() {
                Some(c) if c.is_digit(radix) => {
                    self.bump();
                    any = true;
                }
                Some('_') if any && self.peek_nth(1).is_some_and(|c| c.is_digit(radix)) => {
                    self.bump();
                }
                _ => return any,
            }
        }
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let radix = match (self.peek(), self.peek_nth(1)) {
            (Some('0'), Some('x' | 'X')) => Some((16, "hexadecimal")),
            (Some('0'), Some('o' | 'O')) => Some((8, "octal")),
            (Some('0'), Some('b' | 'B')) => Some((2, "binary")),
            _ => None,
        };
        if let Some((radix, name)) = radix {
            self.pos = self.pos.saturating_add(2);
            if self.peek() == Some('_') {
                self.bump();
            }
            let any = self.digits(radix);
            if let Some(c) = self.peek().filter(char::is_ascii_digit) {
                let message = format!("invalid digit '{c}' in {name} literal");
                return Err(self.bad_number(start, &message));
            }
            if !any || self.peek().is_some_and(is_ident_continue) {
                return Err(self.bad_number(start, &format!("invalid {name} literal")));
            }
            let digits = text_of(self.src, start.saturating_add(2), self.pos).replace('_', "");
            return self.int(start, &digits, radix);
        }
        self.digits(10);
        let mut is_float = false;
        if self.peek() == Some('.') {
            self.bump();
            is_float = true;
            self.digits(10);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_nth(1), Some('+' | '-')));
            if self
                .peek_nth(sign.saturating_add(1))
                .is_some_and(|c| c.is_ascii_digit())
            {
                self.pos = self.pos.saturating_add(sign).saturating_add(1);
                self.digits(10);
                is_float = true;
            }
        }
        if matches!(self.peek(), Some('j' | 'J')) {
            self.bump();
            if !self.peek().is_some_and(is_ident_continue) {
                return Err(ParseError::new(
                    "complex number literals are not supported",
                    self.span_from(start),
                ));
            }
        }
        if self.peek().is_some_and(is_ident_continue) {
            return Err(self.bad_number(start, "invalid decimal literal"));
        }
        let text = text_of(self.src, start, self.pos).replace('_', "");
        if is_float {
            return text
                .parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| ParseError::new("invalid float literal", self.span_from(start)));
        }
        if text.len() > 1 && text.starts_with('0') && text.bytes().any(|b| b != b'0') {
            return Err(ParseError::new(
                "leading zeros in decimal integer literals are not permitted; \
                 use an 0o prefix for octal integers",
                self.span_from(start),
            ));
        }
        self.int(start, &text, 10)
    }

    fn int(&self, start: usize, digits: &str, radix: u32) -> Result<Tok, ParseError> {
        i64::from_str_radix(digits, radix)
            .map(Tok::Int)
            .map_err(|_| {
                ParseError::new(
                    format!(
                        "integer literal {} is too large (the largest is 9223372036854775807)",
                        text_of(self.src, start, self.pos)
                    ),
                    self.span_from(start),
                )
            })
    }

    /// An error covering the malformed literal up to the end of the letters glued to it.
    fn bad_number(&mut self, start: usize, message: &str) -> ParseError {
        while self
            .peek()
            .is_some_and(|c| is_ident_continue(c) || c == '.')
        {
            self.bump();
        }
        ParseError::new(message, self.span_from(start))
    }

    /// A string literal starting at `start` (its prefix, if any, is already consumed).
    fn string(&mut self, start: usize) -> Result<Tok, ParseError> {
        let prefix = text_of(self.src, start, self.pos).to_ascii_lowercase();
        let raw = prefix.contains('r');
        let Some(quote) = self.bump() else {
            return Err(ParseError::new("expected a string", self.span_from(start)));
        };
        let triple = self.peek() == Some(quote) && self.peek_nth(1) == Some(quote);
        if triple {
            self.pos = self.pos.saturating_add(2);
        }
        let open = self.span_from(start);
        let unterminated = || {
            let what = if triple {
                "unterminated triple-quoted string literal"
            } else {
                "unterminated string literal"
            };
            ParseError::new(what, open)
        };
        let mut value = String::new();
        loop {
            let escape_start = self.pos;
            let Some(c) = self.bump() else {
                return Err(unterminated());
            };
            match c {
                '\n' if !triple => return Err(unterminated()),
                c if c == quote => {
                    if !triple {
                        break;
                    }
                    if self.peek() == Some(quote) && self.peek_nth(1) == Some(quote) {
                        self.pos = self.pos.saturating_add(2);
                        break;
                    }
                    value.push(c);
                }
                '\\' => {
                    let Some(next) = self.bump() else {
                        return Err(unterminated());
                    };
                    if raw {
                        value.push('\\');
                        value.push(next);
                    } else {
                        self.escape(next, escape_start, &mut value)?;
                    }
                }
                c => value.push(c),
            }
        }
        let span = self.span_from(start);
        if prefix.contains('f') {
            return Err(ParseError::new("f-strings are not supported", span));
        }
        if prefix.contains('b') {
            return Err(ParseError::new("bytes literals are not supported", span));
        }
        Ok(Tok::Str(value))
    }

    /// Decodes the escape `\<c>...` (the backslash and `c` are consumed) into `out`.
    fn escape(&mut self, c: char, start: usize, out: &mut String) -> Result<(), ParseError> {
        let simple = match c {
            '\n' => return Ok(()),
            '\r' => {
                if self.peek() == Some('\n') {
                    self.bump();
                }
                return Ok(());
            }
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '0'..='7' => {
                let mut code = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            self.bump();
                            code = code.saturating_mul(8).saturating_add(d);
                        }
                        None => break,
                    }
                }
                // At most 0o777, always a valid char.
                char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            'x' | 'u' | 'U' => {
                let len = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut code = 0u32;
                for _ in 0..len {
                    match self.peek().and_then(|d| d.to_digit(16)) {
                        Some(d) => {
                            self.bump();
                            code = code.saturating_mul(16).saturating_add(d);
                        }
                        None => {
                            return Err(ParseError::new(
                                format!("truncated \\{c} escape: expected {len} hex digits"),
                                self.span_from(start),
                            ));
                        }
                    }
                }
                char::from_u32(code).ok_or_else(|| {
                    let why = if (0xD800..0xE000).contains(&code) {
                        "is a lone surrogate, which is not supported"
                    } else {
                        "is not a valid Unicode code point"
                    };
                    ParseError::new(format!("escape {why}"), self.span_from(start))
                })?
            }
            'N' => {
                return Err(ParseError::new(
                    "named Unicode escapes (\\N{...}) are not supported",
                    self.span_from(start),
                ));
            }
            other => {
                // Python keeps unknown escapes such as "\d" as written.
                out.push('\\');
                other
            }
        };
        out.push(simple);
        Ok(())
    }
}

/// Python's string prefixes (case-insensitive): r, u, b, f and the two-letter combinations.
fn is_string_prefix(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "r" | "u" | "b" | "f" | "br" | "rb" | "fr" | "rf"
    )
}
