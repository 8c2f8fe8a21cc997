//! Parser for the captured runtime logs in `shared/testdata/runtime/*.log`: one entry per plugin
//! call, in the order the calls finished.
//!
//! ```text
//! =================== <time> plugin=<name> pid=<pid> parent=<parent command line>
//! KEY=VALUE            (the CNI_* variables and PATH, one per line)
//! --- stdin:
//! <config JSON, possibly empty>
//! --- stdout (rc=<N>, <T> us):
//! <reply, possibly empty or multi-line>
//! ```

use std::path::{Path, PathBuf};

const HEADER: &str = "=================== ";
const STDIN: &str = "--- stdin:";
const STDOUT: &str = "--- stdout (rc=";

/// One recorded plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub time: String,
    pub plugin: String,
    pub pid: u32,
    pub parent: String,
    /// In file order.
    pub env: Vec<(String, String)>,
    pub stdin: String,
    pub rc: i32,
    pub micros: u64,
    pub stdout: String,
    /// 1-based line of the header, for messages.
    pub line: usize,
}

impl LogEntry {
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `CNI_COMMAND`, or "" when absent.
    pub fn command(&self) -> &str {
        self.env("CNI_COMMAND").unwrap_or("")
    }

    /// stdin as JSON (`None` when empty or not JSON).
    pub fn stdin_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.stdin).ok()
    }

    /// stdout as JSON (`None` when empty or not JSON).
    pub fn stdout_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.stdout).ok()
    }

    /// An IPAM call a plugin made (its parent is a plugin binary, not the runtime).
    pub fn is_ipam_subcall(&self) -> bool {
        matches!(self.plugin.as_str(), "host-local" | "static")
    }
}

/// A parse error with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

fn err(line: usize, msg: impl Into<String>) -> ParseError {
    ParseError {
        line,
        msg: msg.into(),
    }
}

fn parse_header(rest: &str, line: usize) -> Result<(String, String, u32, String), ParseError> {
    let (time, rest) = rest
        .split_once(' ')
        .ok_or_else(|| err(line, "header without fields"))?;
    let rest = rest
        .strip_prefix("plugin=")
        .ok_or_else(|| err(line, "header without plugin="))?;
    let (plugin, rest) = rest
        .split_once(' ')
        .ok_or_else(|| err(line, "header without pid="))?;
    let rest = rest
        .strip_prefix("pid=")
        .ok_or_else(|| err(line, "header without pid="))?;
    let (pid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let pid = pid
        .parse()
        .map_err(|_| err(line, format!("bad pid {pid:?}")))?;
    let parent = rest
        .strip_prefix("parent=")
        .unwrap_or(rest)
        .trim_end()
        .to_owned();
    Ok((time.to_owned(), plugin.to_owned(), pid, parent))
}

fn parse_stdout_marker(rest: &str, line: usize) -> Result<(i32, u64), ParseError> {
    // "<rc>, <T> us):"
    let (rc, rest) = rest
        .split_once(',')
        .ok_or_else(|| err(line, "stdout marker without ','"))?;
    let rc = rc
        .trim()
        .parse()
        .map_err(|_| err(line, format!("bad rc {rc:?}")))?;
    let t = rest
        .trim()
        .trim_end_matches("):")
        .trim()
        .trim_end_matches("us")
        .trim();
    let micros = t
        .parse()
        .map_err(|_| err(line, format!("bad duration {t:?}")))?;
    Ok((rc, micros))
}

/// Parse a whole log.
pub fn parse(text: &str) -> Result<Vec<LogEntry>, ParseError> {
    enum State {
        Start,
        Env,
        Stdin,
        Stdout,
    }
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut state = State::Start;
    let mut stdin: Vec<&str> = Vec::new();
    let mut stdout: Vec<&str> = Vec::new();
    let finish = |entries: &mut Vec<LogEntry>, stdin: &mut Vec<&str>, stdout: &mut Vec<&str>| {
        if let Some(e) = entries.last_mut() {
            e.stdin = stdin.join("\n").trim().to_owned();
            e.stdout = stdout.join("\n").trim().to_owned();
        }
        stdin.clear();
        stdout.clear();
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(rest) = raw.strip_prefix(HEADER) {
            match state {
                State::Start | State::Stdout => {}
                State::Env | State::Stdin => {
                    return Err(err(n, "entry ends before its stdout marker"));
                }
            }
            finish(&mut entries, &mut stdin, &mut stdout);
            let (time, plugin, pid, parent) = parse_header(rest, n)?;
            entries.push(LogEntry {
                time,
                plugin,
                pid,
                parent,
                env: Vec::new(),
                stdin: String::new(),
                rc: 0,
                micros: 0,
                stdout: String::new(),
                line: n,
            });
            state = State::Env;
            continue;
        }
        match state {
            State::Start if raw.trim().is_empty() => {}
            State::Start => return Err(err(n, "text before the first entry header")),
            State::Env if raw == STDIN => state = State::Stdin,
            State::Env => {
                let (k, v) = raw
                    .split_once('=')
                    .ok_or_else(|| err(n, format!("expected KEY=VALUE, got {raw:?}")))?;
                if let Some(e) = entries.last_mut() {
                    e.env.push((k.to_owned(), v.to_owned()));
                }
            }
            State::Stdin => {
                if let Some(rest) = raw.strip_prefix(STDOUT) {
                    let (rc, micros) = parse_stdout_marker(rest, n)?;
                    if let Some(e) = entries.last_mut() {
                        e.rc = rc;
                        e.micros = micros;
                    }
                    state = State::Stdout;
                } else {
                    stdin.push(raw);
                }
            }
            State::Stdout => stdout.push(raw),
        }
    }
    match state {
        State::Env | State::Stdin => {
            return Err(err(text.lines().count(), "log ends inside an entry"));
        }
        State::Start | State::Stdout => {}
    }
    finish(&mut entries, &mut stdin, &mut stdout);
    Ok(entries)
}

/// `shared/testdata/runtime`, relative to this crate (`tests/` → `../../shared/...`).
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/runtime")
}

/// The `*.log` files of `dir`, grouped into sessions by the first two `-`-separated parts of their
/// name (`containerd-cri-runp.log` + `containerd-cri-stopp.log` are one pod's life), each group
/// sorted by name; groups sorted by key.
pub fn sessions(dir: &Path) -> std::io::Result<Vec<(String, Vec<PathBuf>)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key: Vec<&str> = name
            .trim_end_matches(".log")
            .splitn(3, '-')
            .take(2)
            .collect();
        let key = key.join("-");
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(f),
            None => groups.push((key, vec![f])),
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "=================== 2026-11-24T00:51:00.057Z plugin=macvlan pid=12017 parent=podman run --rm x
CNI_ARGS=
CNI_COMMAND=VERSION
CNI_NETNS=dummy
PATH=/usr/bin:/bin
--- stdin:
{\"cniVersion\":\"1.0.0\"}
--- stdout (rc=0, 9310 us):
{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}
=================== 2026-11-24T00:51:00.201Z plugin=host-local pid=12070 parent=/usr/lib/cni/macvlan 
CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=a=b
CNI_COMMAND=DEL
--- stdin:
--- stdout (rc=1, 58 us):
{
    \"code\": 7,
    \"msg\": \"x\"
}

=================== 2026-11-24T00:51:00.301Z plugin=tuning pid=3 parent=y
CNI_COMMAND=DEL
--- stdin:
{}
--- stdout (rc=0, 1 us):
";

    #[test]
    fn parses_entries_env_stdin_and_stdout() {
        let e = parse(SAMPLE).expect("parse");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].plugin, "macvlan");
        assert_eq!(e[0].pid, 12017);
        assert_eq!(e[0].parent, "podman run --rm x");
        assert_eq!(e[0].time, "2026-11-24T00:51:00.057Z");
        assert_eq!(e[0].env("CNI_ARGS"), Some(""));
        assert_eq!(e[0].command(), "VERSION");
        assert_eq!(e[0].micros, 9310);
        assert_eq!(e[0].stdin_json().expect("json")["cniVersion"], "1.0.0");
        assert_eq!(
            e[0].stdout_json().expect("json")["supportedVersions"][0],
            "1.0.0"
        );
        assert_eq!(e[1].parent, "/usr/lib/cni/macvlan");
        assert!(e[1].is_ipam_subcall());
        assert_eq!(
            e[1].env("CNI_ARGS"),
            Some("IgnoreUnknown=1;K8S_POD_NAME=a=b")
        );
        assert_eq!(e[1].stdin, "");
        assert_eq!(e[1].rc, 1);
        assert_eq!(e[1].stdout_json().expect("json")["code"], 7);
        assert_eq!(e[1].line, 10);
        assert_eq!(e[2].stdout, "");
        assert_eq!(e[2].stdin, "{}");
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        assert!(parse("hello\n").is_err());
        let cut =
            "=================== t plugin=x pid=1 parent=p\nCNI_COMMAND=ADD\n--- stdin:\n{}\n";
        assert_eq!(
            parse(cut).expect_err("truncated").msg,
            "log ends inside an entry"
        );
        let bad = "=================== t plugin=x pid=1 parent=p\nnot an env line\n";
        assert_eq!(parse(bad).expect_err("bad env").line, 2);
        let bad_rc =
            "=================== t plugin=x pid=1 parent=p\n--- stdin:\n--- stdout (rc=x, 1 us):\n";
        assert!(parse(bad_rc).is_err());
        assert_eq!(parse("").expect("empty"), vec![]);
    }

    #[test]
    fn every_captured_log_parses() {
        let dir = testdata_dir();
        let Ok(groups) = sessions(&dir) else {
            eprintln!(
                "skipping every_captured_log_parses: {} is absent",
                dir.display()
            );
            return;
        };
        assert!(
            groups
                .iter()
                .any(|(k, f)| k == "containerd-cri" && f.len() == 2),
            "{groups:?}"
        );
        for (_, files) in groups {
            for f in files {
                let text = std::fs::read_to_string(&f).expect("read");
                let entries = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                assert_eq!(
                    entries.len(),
                    text.matches(HEADER).count(),
                    "{}",
                    f.display()
                );
                for e in &entries {
                    assert!(
                        !e.command().is_empty(),
                        "{}:{} has no CNI_COMMAND",
                        f.display(),
                        e.line
                    );
                    if e.rc == 0 && e.command() == "ADD" {
                        assert!(
                            e.stdout_json().is_some(),
                            "{}:{} ADD without JSON",
                            f.display(),
                            e.line
                        );
                    }
                }
            }
        }
    }
}
