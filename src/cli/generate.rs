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
const EXTRA_SECTIONS: &str = r#".SH EXAMPLES
Check a configuration before (re)starting; every mistake is listed with its file, line, column
and key, and the exit status is 2 if there is any:
.PP
.RS
.nf
meshroom\-gw check\-config \-\-config /etc/meshroom\-gw/config.yaml
.fi
.RE
.PP
Start from the commented template:
.PP
.RS
.nf
meshroom\-gw configfile > gw.yaml
.fi
.RE
.PP
Run in the foreground with debug logs, then post into a room and read the status:
.PP
.RS
.nf
MESHROOM_LOG=debug meshroom\-gw run \-\-config gw.yaml
meshroom\-gw post \-\-room Public "hello from the host"
meshroom\-gw status
.fi
.RE
.PP
Bring up radio hardware, listing the board presets first:
.PP
.RS
.nf
meshroom\-gw radio presets
meshroom\-gw radio probe
.fi
.RE
.SH FILES
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
\fBmeshroom\-gw.yaml\fR(5), \fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// `meshroom-gw.yaml(5)`: the configuration file, its keys rendered from the same table the
/// checker uses ([`crate::config::schema`]), so the page cannot drift from what is accepted.
pub fn config_page() -> String {
    let mut page = String::new();
    page.push_str(&format!(
        ".TH meshroom-gw.yaml 5 \"\" \"meshroom-gw {}\" \"meshroom-gw\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    page.push_str(
        r#".SH NAME
meshroom\-gw.yaml \- configuration file of meshroom\-gw
.SH SYNOPSIS
\fI/etc/meshroom\-gw/config.yaml\fR
.SH DESCRIPTION
One YAML file. Only \fBrooms\fR is required; every other section and key has a default.
\fBmeshroom\-gw configfile\fR prints a commented template.
.PP
Mistakes are errors, never silently replaced by defaults: unknown keys (with the closest valid
key suggested), keys given twice, values of the wrong type or out of range, a transmit power
above the board's limit, secrets still holding the template's "CHANGE\-ME" placeholder.
\fBmeshroom\-gw check\-config\fR lists every mistake in one run, one line each, ordered by line:
.PP
.RS
.nf
FILE:LINE:COLUMN: KEY.PATH: what was expected, and what was found
.fi
.RE
.PP
and exits with status 2. The same checks run at start and on a reload (SIGHUP); a reload
with mistakes keeps the running configuration.
.SH KEYS
"#,
    );
    page.push_str(&crate::config::schema::roff_keys());
    page.push_str(
        r#".SH EXAMPLE
.nf
rooms:
  \- name: "RegionMesh\-Public"
    psk: ""
    description: "Public community channel for the region"
    max_history: 1000
  \- name: "EmergencyNet"
    psk: "secretkeyhere"
    max_history: 500
peers:
  \- host: "room\-server\-portland.example.com"
    port: 7070
    secret: "shared\-peer\-secret"
radio:
  backend: sx126x
  board: meshadv\-mini
  region: eu\-uk\-narrow
.fi
.SH FILES
.TP
\fI/etc/meshroom\-gw/config.yaml\fR
The configuration \fBmeshroom\-gw run\fR reads when \fB\-\-config\fR is not given.
.TP
\fI/var/lib/meshroom\-gw\fR
The default \fBserver.state_dir\fR.
.SH SEE ALSO
\fBmeshroom\-gw\fR(1), \fBmeshroom\-gw\-check\-config\fR(1)
"#,
    );
    page
}

/// Writes `meshroom-gw.1` and one `meshroom-gw-SUB[-SUB…].1` per visible subcommand, at every
/// depth, into `dir`; returns the files written.
/// Also writes `meshroom-gw.yaml.5`, the configuration file's page.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = without_help_subcommands(Cli::command());
    // Builds the display names (`meshroom-gw-run`) the pages are named and cross-linked by.
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, None, dir, &mut written)?;
    let config = dir.join("meshroom-gw.yaml.5");
    std::fs::write(&config, config_page())?;
    written.push(config);
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
        Generate::Man { dir } => {
            let created = !dir.exists();
            match write_man_pages(&dir) {
                Ok(pages) => {
                    if created {
                        eprintln!("created directory {}", dir.display());
                    }
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
            }
        }
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
        for section in [
            ".SH EXAMPLES",
            ".SH SIGNALS",
            ".SH EXIT STATUS",
            "/var/lib/meshroom\\-gw",
        ] {
            assert!(main.contains(section), "{section} in meshroom-gw.1");
        }
        let config = std::fs::read_to_string(dir.path().join("meshroom-gw.yaml.5"))
            .expect("the configuration's page");
        assert!(config.starts_with(".TH meshroom-gw.yaml 5"), "{config}");
        for (path, _) in crate::config::schema::leaves() {
            let roffed = crate::config::schema::roff(&path);
            assert!(
                config.contains(&roffed),
                "{path} described in meshroom-gw.yaml(5)"
            );
        }
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
