//! The results pages: each report tool writes one page,
//! `docs/results/<report>.md` (pictures under `docs/results/img/`), whose
//! header names the command, the commit, the machine and the date, so that
//! a rerun replaces the page and a reader knows what produced each figure.
//!
//! ```no_run
//! use phase_lock_reports::page::Page;
//!
//! let page = Page::new("scaling", "phase-lock scaling report", &["PHASE_LOCK_BENCH_QUICK"]);
//! let mut text = page.header();
//! text.push_str("| kind | 1 thr |\n|---|---:|\n| read | 178.4 |\n");
//! page.write(&text);
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that moves the pages elsewhere (a directory;
/// its `img/` takes the pictures), for a smoke run that must not replace the
/// committed pages.
pub const RESULTS_DIR_VAR: &str = "PHASE_LOCK_RESULTS_DIR";

/// One report's page.
pub struct Page {
    /// The report's name: its binary's, and the page's file name.
    name: &'static str,
    /// The page's title (its first heading).
    title: &'static str,
    /// The environment variables the report reads, in the order the
    /// command line shows them.
    knobs: &'static [&'static str],
}

impl Page {
    /// The page `docs/results/<name>.md` of the binary `name`, which reads
    /// the environment variables `knobs` (those set are shown in the
    /// command; [`RESULTS_DIR_VAR`] is never, since it changes only where
    /// the page goes).
    pub const fn new(name: &'static str, title: &'static str, knobs: &'static [&'static str]) -> Page {
        Page { name, title, knobs }
    }

    /// The same report's page under another name (the patience sweep of the
    /// fairness tool writes `patience.md`), with another title.
    pub const fn named(self, name: &'static str, title: &'static str) -> Page {
        Page { name, title, ..self }
    }

    /// The command that produced this run, as a reader would type it: the
    /// report's environment variables that are set, the `cargo run` line and
    /// the binary's arguments.
    pub fn command(&self) -> String {
        let env: Vec<(String, String)> =
            self.knobs.iter().filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v))).collect();
        let args: Vec<String> = std::env::args().skip(1).collect();
        command_line(binary_name(), &env, &args)
    }

    /// The page's title and header: what produced it (command, commit,
    /// machine, date), a note when it was a quick run, and that a rerun
    /// replaces it. Ends with a blank line.
    pub fn header(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", self.title);
        let _ = writeln!(
            out,
            "Written by the report tool `{}` of the workspace member `phase-lock-reports`; \
             running the command again replaces this page.\n",
            binary_name()
        );
        let _ = writeln!(out, "- **command**: `{}`", self.command());
        let _ = writeln!(out, "- **commit**: {}", commit_label(&git_commit()));
        let _ = writeln!(out, "- **machine**: {}", machine());
        let _ = writeln!(out, "- **date**: {} (UTC)", today());
        if crate::quick() {
            let _ = writeln!(
                out,
                "- **quick run** (`PHASE_LOCK_BENCH_QUICK=1`): a reduced matrix with short runs, a smoke test of \
                 the tool; its figures are not for comparison. A full run (the command without \
                 `PHASE_LOCK_BENCH_QUICK`) replaces them."
            );
        }
        out.push('\n');
        out
    }

    /// Where the page goes.
    pub fn path(&self) -> PathBuf {
        results_dir().join(format!("{}.md", self.name))
    }

    /// Writes `text` as the page (creating `docs/results/` if needed) and
    /// says where; a failure to write is reported, not fatal: the report has
    /// been printed already.
    pub fn write(&self, text: &str) {
        write_file(&self.path(), text);
    }
}

/// The name the binary was invoked under (`fairness`, `throughput`, ...).
fn binary_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::env::args()
            .next()
            .as_deref()
            .map(Path::new)
            .and_then(Path::file_stem)
            .map_or_else(|| "report".to_owned(), |s| s.to_string_lossy().into_owned())
    })
}

/// `cargo run --release -p phase-lock-reports --bin <bin>`, preceded by the
/// environment assignments `env` and followed by `-- <args>` if there are
/// any; values and arguments are quoted for a POSIX shell where they need
/// it.
pub fn command_line(bin: &str, env: &[(String, String)], args: &[String]) -> String {
    let mut out = String::new();
    for (k, v) in env {
        let _ = write!(out, "{k}={} ", shell_quote(v));
    }
    let _ = write!(out, "cargo run --release -p phase-lock-reports --bin {bin}");
    if !args.is_empty() {
        out.push_str(" --");
        for a in args {
            let _ = write!(out, " {}", shell_quote(a));
        }
    }
    out
}

/// `s` as one POSIX shell word: unchanged if it is made of safe characters,
/// else in single quotes.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.,/:=+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// The workspace root (the directory above this crate's).
///
/// # Panics
///
/// If this crate's manifest directory has no parent, which a checkout of the
/// workspace never has.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the reports crate sits inside the workspace").to_owned()
}

/// `docs/results/` under the workspace root, or [`RESULTS_DIR_VAR`].
pub fn results_dir() -> PathBuf {
    std::env::var_os(RESULTS_DIR_VAR).map_or_else(|| workspace_root().join("docs").join("results"), PathBuf::from)
}

/// Where the pages' pictures go: `img/` beside the pages. A page links a
/// picture `x.svg` as `img/x.svg`.
pub fn image_dir() -> PathBuf {
    results_dir().join("img")
}

/// Writes `text` to `path`, creating its directory, and says so on stderr;
/// reports a failure without stopping.
pub fn write_file(path: &Path, text: &str) {
    let result = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(path, text));
    match result {
        Ok(()) => eprintln!("written: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// The commit the working tree is at (`git rev-parse --short HEAD`;
/// `unknown` outside git), with `+dirty` appended when the tree differs
/// from it outside the documentation (`docs/` and Markdown files, which the
/// tools themselves write and which change no figure): the figures then
/// describe the working tree. When measuring an exported tree (`git
/// archive`), which has no `.git`, set `PHASE_LOCK_COMMIT` to the commit it
/// was exported from.
pub fn git_commit() -> String {
    if let Ok(c) = std::env::var("PHASE_LOCK_COMMIT") {
        return c;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown".to_owned(),
        Some(head) => {
            match git(&["--no-optional-locks", "status", "--porcelain", "--", ".", ":(exclude)docs", ":(exclude)*.md"])
            {
                Some(s) if !s.is_empty() => format!("{head}+dirty"),
                _ => head,
            }
        }
    }
}

/// A commit as a page shows it: in code font, with what `+dirty` means.
fn commit_label(commit: &str) -> String {
    match commit.strip_suffix("+dirty") {
        Some(head) => format!("`{head}` + uncommitted changes (dirty: the figures describe the working tree)"),
        None => format!("`{commit}`"),
    }
}

/// A one-line description of this machine: CPU model, the cores available
/// to this process, and the kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!("Linux {}", r.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    format!("{cpu}, {cores} cores available, {kernel}")
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of day `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn commands_read_as_typed() {
        assert_eq!(command_line("scaling", &[], &[]), "cargo run --release -p phase-lock-reports --bin scaling");
        let env = [("PHASE_LOCK_BENCH_QUICK".to_owned(), "1".to_owned()), ("X".to_owned(), "a b".to_owned())];
        assert_eq!(
            command_line("fairness", &env, &["--sweep".to_owned()]),
            "PHASE_LOCK_BENCH_QUICK=1 X='a b' cargo run --release -p phase-lock-reports --bin fairness -- --sweep"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("ri-fixed,rw-50-50"), "ri-fixed,rw-50-50");
    }

    #[test]
    fn dirty_commits_say_so() {
        assert_eq!(commit_label("abc1234"), "`abc1234`");
        assert!(commit_label("abc1234+dirty").starts_with("`abc1234` + uncommitted"));
    }

    #[test]
    fn the_header_names_what_produced_the_page() {
        let h = Page::new("scaling", "phase-lock scaling report", &[]).header();
        assert!(h.starts_with("# phase-lock scaling report\n"));
        for field in ["**command**", "**commit**", "**machine**", "**date**"] {
            assert!(h.contains(field), "{field} missing from {h}");
        }
        assert!(h.ends_with("\n\n"));
    }
}
