//! Command lines as words: shell splitting with byte ranges into the file a command
//! was written in, and `--flag value` parsing. No knowledge of any program.

use std::ops::Range;

/// One shell word and its byte range.
pub type Word = (String, Range<usize>);

/// Why a command line could not be split completely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellError {
    pub message: String,
    /// Byte range (relative to the text split) of the construct at fault.
    pub bytes: Range<usize>,
}

/// Splits a command line into words with their byte ranges in `text`.
pub fn shell_words(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    split(text).0
}

/// Splits a command line like a POSIX shell: single quotes are literal, double quotes
/// keep `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes the next
/// character (a backslash-newline joins lines), `#` at a word start begins a comment.
/// `$VAR` and `${VAR:-x}` stay as text. `;`, `&&`, `||`, `|` and `&` are words of their
/// own. An unterminated quote ends the last word at the end of the text and is
/// reported.
pub fn split(text: &str) -> (Vec<Word>, Option<ShellError>) {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut start: Option<usize> = None;
    let mut error = None;
    let mut chars = text.char_indices().peekable();
    let flush = |words: &mut Vec<Word>, current: &mut String, start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take() {
            words.push((std::mem::take(current), s..end));
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut words, &mut current, &mut start, i),
            '#' if start.is_none() => {
                // A comment runs to the end of the line.
                while let Some(&(_, n)) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            ';' | '&' | '|' => {
                flush(&mut words, &mut current, &mut start, i);
                let mut op = c.to_string();
                let mut end = i + c.len_utf8();
                if c != ';'
                    && let Some(&(j, n)) = chars.peek()
                    && n == c
                {
                    op.push(n);
                    end = j + n.len_utf8();
                    chars.next();
                }
                words.push((op, i..end));
            }
            '\\' => {
                start.get_or_insert(i);
                match chars.next() {
                    Some((_, '\n')) if current.is_empty() && start == Some(i) => start = None,
                    Some((_, '\n')) | None => {}
                    Some((_, n)) => current.push(n),
                }
            }
            '\'' => {
                start.get_or_insert(i);
                let mut closed = false;
                for (_, n) in chars.by_ref() {
                    if n == '\'' {
                        closed = true;
                        break;
                    }
                    current.push(n);
                }
                if !closed {
                    error.get_or_insert(ShellError { message: "unterminated single quote".into(), bytes: i..text.len() });
                }
            }
            '"' => {
                start.get_or_insert(i);
                let mut closed = false;
                while let Some((_, n)) = chars.next() {
                    match n {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&(_, e)) if matches!(e, '"' | '\\' | '$' | '`') => {
                                current.push(e);
                                chars.next();
                            }
                            Some(&(_, '\n')) => {
                                chars.next();
                            }
                            _ => current.push('\\'),
                        },
                        n => current.push(n),
                    }
                }
                if !closed {
                    error.get_or_insert(ShellError { message: "unterminated double quote".into(), bytes: i..text.len() });
                }
            }
            c => {
                start.get_or_insert(i);
                current.push(c);
            }
        }
    }
    flush(&mut words, &mut current, &mut start, text.len());
    (words, error)
}

/// The byte offset in `text` where the characters of a scalar's value start, when the
/// value is written literally (plain, or quoted without escapes) inside `span`.
pub fn scalar_offset(text: &str, span: &Range<usize>, value: &str) -> Option<usize> {
    let raw = text.get(span.clone())?;
    if raw == value {
        return Some(span.start);
    }
    let quoted = raw.len() >= 2 && ((raw.starts_with('"') && raw.ends_with('"')) || (raw.starts_with('\'') && raw.ends_with('\'')));
    if quoted && &raw[1..raw.len() - 1] == value {
        return Some(span.start + 1);
    }
    // The span may cover more (a trailing comment, a block indicator): find the value.
    if !value.is_empty() && raw.matches(value).count() == 1 {
        return raw.find(value).map(|i| span.start + i);
    }
    None
}

/// Splits a command written as one scalar (`command: gunicorn ...`) whose text sits at
/// `span` in the file text. Word ranges point into the file; when the scalar is not
/// written literally (escapes, folding) every word points at the whole scalar.
pub fn words_in(file_text: &str, span: &Range<usize>, value: &str) -> (Vec<Word>, Option<ShellError>) {
    let (words, error) = split(value);
    match scalar_offset(file_text, span, value) {
        Some(offset) => {
            let shift = |r: Range<usize>| r.start + offset..r.end + offset;
            (
                words.into_iter().map(|(w, r)| (w, shift(r))).collect(),
                error.map(|e| ShellError { bytes: shift(e.bytes), ..e }),
            )
        }
        None => (
            words.into_iter().map(|(w, _)| (w, span.clone())).collect(),
            error.map(|e| ShellError { bytes: span.clone(), ..e }),
        ),
    }
}

pub fn segment_offset(words: &[Word], segment: &[Word]) -> usize {
    (segment.as_ptr() as usize - words.as_ptr() as usize) / std::mem::size_of::<Word>()
}

/// Command words split at `;`, `&&`, `||`, `|`, `&`.
pub fn segments(words: &[Word]) -> Vec<&[Word]> {
    words.split(|(w, _)| matches!(w.as_str(), ";" | "&&" | "||" | "|" | "&")).filter(|s| !s.is_empty()).collect()
}

pub fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// The script of `sh -c SCRIPT` / `bash -c SCRIPT` / `/bin/sh -ec SCRIPT`.
pub fn shell_script(words: &[Word]) -> Option<(String, Range<usize>)> {
    let mut i = 0;
    while i < words.len() && (words[i].0 == "exec" || base(&words[i].0).ends_with("entrypoint.sh")) {
        i += 1;
    }
    let program = base(&words.get(i)?.0);
    if !matches!(program, "sh" | "bash" | "ash" | "dash" | "zsh") {
        return None;
    }
    for (j, (w, _)) in words.iter().enumerate().skip(i + 1) {
        if w.starts_with('-') && !w.starts_with("--") && w.contains('c') {
            return words.get(j + 1).map(|(t, r)| (t.clone(), r.clone()));
        }
        if !w.starts_with('-') {
            break;
        }
    }
    None
}

/// Drops shell redirections (`> file`, `2>&1`, `>>log`).
pub fn strip_redirects(words: &[Word]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for (w, r) in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let t = w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&');
        if t.starts_with('>') || t.starts_with('<') {
            skip_next = matches!(t, ">" | ">>" | "<" | ">|");
            continue;
        }
        out.push((w.clone(), r.clone()));
    }
    out
}

/// One option and its value, as written.
pub struct Opt {
    /// `--workers`, `-w`.
    pub flag: String,
    pub value: Option<Word>,
    /// From the flag to the end of its value.
    pub bytes: Range<usize>,
}

pub enum Arg {
    Opt(Opt),
    Positional(Word),
}

/// Parses `--flag value`, `--flag=value`, `-f value`, `-fvalue`; `takes_value` says
/// which flags take a value.
pub fn parse_args(words: &[Word], takes_value: impl Fn(&str) -> bool) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut only_positional = false;
    while i < words.len() {
        let (w, r) = &words[i];
        i += 1;
        if only_positional || !w.starts_with('-') || w == "-" {
            out.push(Arg::Positional((w.clone(), r.clone())));
            continue;
        }
        if w == "--" {
            only_positional = true;
            continue;
        }
        if let Some((flag, value)) = w.split_once('=').filter(|_| w.starts_with("--")) {
            let offset = r.start + flag.len() + 1;
            let value_range = if r.len() == w.len() { offset..r.end } else { r.clone() };
            out.push(Arg::Opt(Opt { flag: flag.to_string(), value: Some((value.to_string(), value_range)), bytes: r.clone() }));
            continue;
        }
        if !w.starts_with("--") && w.len() > 2 && w.is_char_boundary(2) && takes_value(&w[..2]) {
            let value_range = if r.len() == w.len() { r.start + 2..r.end } else { r.clone() };
            out.push(Arg::Opt(Opt { flag: w[..2].to_string(), value: Some((w[2..].trim_start_matches('=').to_string(), value_range)), bytes: r.clone() }));
            continue;
        }
        if takes_value(w) && i < words.len() {
            let (v, vr) = &words[i];
            i += 1;
            // A flag and its value far apart (list items on their own lines): the value.
            let bytes = if vr.start > r.end + 2 { vr.clone() } else { r.start..vr.end.max(r.end) };
            out.push(Arg::Opt(Opt { flag: w.clone(), value: Some((v.clone(), vr.clone())), bytes }));
        } else {
            out.push(Arg::Opt(Opt { flag: w.clone(), value: None, bytes: r.clone() }));
        }
    }
    out
}
