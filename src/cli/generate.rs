//! Manual pages and shell completions generated from the clap definition in [`crate::cli`].
//!
//! `meshroom-gw generate man DIR` and `meshroom-gw generate completions SHELL` are run by the
//! packaging script on the freshly built binary; the `.deb` installs what they write. The top-level
//! page gains the sections clap cannot know: files, signals, exit status and environment.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Generate};

/// Sections appended to `meshroom-gw(1)`, in roff.
const EXTRA_SECTIONS: &str = r#".SH FILES
.TP
\fI/etc/meshroom\-gw/config.yaml\fR
The configuration used when \fB\-\-config\fR is not given. A commented template is printed by
\fBmeshroom\-gw configfile\fR. Secrets containing "CHANGE\-ME" are refused.
.TP
\fI/var/lib/meshroom\-gw\fR
State directory (\fBserver.state_dir\fR): the SQLite history, room identities and keys.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Re\-read the configuration file and apply room and \fBhttp.status_allow\fR changes
(\fBsystemctl reload meshroom\-gw\fR). Rooms added or removed need a restart.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop after flushing every accepted post to disk.
.SH EXIT STATUS
0 on success, 1 on a runtime error, 2 when the configuration has errors.
.SH ENVIRONMENT
.TP
\fBMESHROOM_CONFIG\fR
Configuration file, as \fB\-\-config\fR.
.TP
\fBMESHROOM_LOG\fR
Log filter in tracing's syntax, e.g. \fIinfo\fR or \fImeshroom_gw=debug\fR (default \fIinfo\fR).
.TP
\fBMESHROOM_PSK\fR
Password of a private room for \fBmeshroom\-gw post\fR, instead of reading it from the configuration.
.TP
\fBNOTIFY_SOCKET\fR
Set by systemd: readiness and reloads are reported to it.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// Writes `meshroom-gw.1` and one `meshroom-gw-SUB[-SUB…].1` per visible subcommand, at every
/// depth, into `dir`; returns the files written.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = without_help_subcommands(Cli::command());
    // Builds the display names (`meshroom-gw-run`) the pages are named and cross-linked by.
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, None, dir, &mut written)?;
    Ok(written)
}

/// clap's `help` subcommand is not worth a page nor an entry in a SUBCOMMANDS section.
fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommands)
}

fn write_page(
    cmd: &clap::Command,
    parent: Option<&str>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let parent_name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
        write_page(sub, Some(parent_name), dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone()).manual("meshroom-gw");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    match parent {
        None => page.extend_from_slice(EXTRA_SECTIONS.as_bytes()),
        Some(parent) => page.extend_from_slice(
            format!(".SH SEE ALSO\n\\fB{}\\fR(1)\n", parent.replace('-', "\\-")).as_bytes(),
        ),
    }
    std::fs::write(&path, page)?;
    written.push(path);
    Ok(())
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "meshroom-gw", out);
}

/// Runs `meshroom-gw generate`.
pub fn generate(what: Generate) -> i32 {
    match what {
        Generate::Man { dir } => match write_man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            }
            Err(e) => {
                eprintln!(
                    "error: cannot write the manual pages to {}: {e}",
                    dir.display()
                );
                1
            }
        },
        Generate::Completions { shell } => {
            write_completions(shell, &mut std::io::stdout());
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_man_pages(dir.path()).expect("man pages");
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        for expected in [
            "meshroom-gw.1",
            "meshroom-gw-run.1",
            "meshroom-gw-check-config.1",
            "meshroom-gw-status.1",
            "meshroom-gw-generate.1",
            "meshroom-gw-generate-completions.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        let main = std::fs::read_to_string(dir.path().join("meshroom-gw.1")).expect("read");
        assert!(main.contains(".TH meshroom-gw 1"), "a section-1 page");
        assert!(main.contains(".SH FILES") && main.contains("config.yaml"));
        assert!(main.contains("check\\-config"), "subcommands listed");
        assert!(
            !main.contains("meshroom\\-gw\\-help"),
            "no page for clap's help"
        );
        let nested = std::fs::read_to_string(dir.path().join("meshroom-gw-generate-man.1"))
            .expect("nested subcommands get pages too");
        assert!(
            nested.contains("\\fBmeshroom\\-gw\\-generate\\fR(1)"),
            "{nested}"
        );
    }

    #[test]
    fn bash_completion_offers_the_subcommands() {
        let mut out = Vec::new();
        write_completions(Shell::Bash, &mut out);
        let script = String::from_utf8(out).expect("utf-8");
        assert!(
            script.contains("complete -F _meshroom__gw"),
            "registers for meshroom-gw"
        );
        assert!(script.contains("check-config") && script.contains("configfile"));
    }
}
