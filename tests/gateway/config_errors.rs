//! Issue 17, "the operator's first hour": broken configuration files written the way a newcomer
//! writes them. For every one, `check-config` exits 2 and prints one line per mistake —
//! `file:line:column: key.path: message`, ordered by line — in words a person acts on, never
//! in the YAML library's words. README's error example is reproduced verbatim, README's key
//! table is the one the checker uses, and room names are matched ignoring case over HTTP.

use std::path::Path;
use std::process::Command;

/// Phrases of the YAML and serde libraries that must never reach an operator.
const LIBRARY_WORDS: &[&str] = &[
    "Option<",
    "Options",
    "sequence start",
    "mapping start",
    "deserialize",
    "4294967295",
    "invalid type",
    "DuplicateKeyPolicy",
];

const ROOM: &str = "rooms:\n  - name: A\n";

/// Runs `check-config` on `bytes` written as `gw.yaml` in a fresh directory (so messages say
/// `gw.yaml`); returns (exit status, stdout, stderr).
fn check(bytes: &[u8]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.yaml"), bytes).unwrap();
    run_in(dir.path())
}

fn run_in(dir: &Path) -> (i32, String, String) {
    let out = Command::new(crate::common::BIN)
        .args(["check-config", "--config", "gw.yaml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One expected line: (line, key path, words the message must contain).
type Line = (usize, &'static str, &'static str);

fn cases() -> Vec<(String, Vec<u8>, Vec<Line>)> {
    let mut c: Vec<(String, Vec<u8>, Vec<Line>)> = Vec::new();
    let mut add = |name: &str, text: String, lines: &[Line]| {
        c.push((name.to_string(), text.into_bytes(), lines.to_vec()));
    };
    // Unknown keys at every level.
    add(
        "unknown top-level key",
        format!("{ROOM}httpp:\n  listen: \"127.0.0.1:1\"\n"),
        &[(3, "httpp", "did you mean `http`")],
    );
    add(
        "unknown key in a section",
        format!("{ROOM}server:\n  nmae: x\n"),
        &[(4, "server.nmae", "did you mean `name`")],
    );
    add(
        "unknown key in a room",
        "rooms:\n  - name: A\n    max_histroy: 5\n".into(),
        &[(3, "rooms[0].max_histroy", "did you mean `max_history`")],
    );
    add(
        "unknown key in a peer",
        format!("{ROOM}peers:\n  - host: h\n    secret: s\n    prot: 1\n"),
        &[(6, "peers[0].prot", "did you mean `port`")],
    );
    add(
        "unknown radio key",
        format!("{ROOM}radio:\n  frequency: 869.5\n"),
        &[(4, "radio.frequency", "did you mean `frequency_mhz`")],
    );
    add(
        "unknown key, nothing close",
        format!("{ROOM}tun:\n  colour: blue\n"),
        &[(4, "tun.colour", "valid keys here: enabled, device")],
    );
    // Keys written twice.
    add(
        "rooms twice",
        "rooms:\n  - name: A\nrooms:\n  - name: B\n".into(),
        &[(3, "rooms", "appears twice in the file (first on line 1)")],
    );
    add(
        "a room's name twice",
        "rooms:\n  - name: A\n    name: B\n".into(),
        &[(3, "rooms[0].name", "appears twice in `rooms[0]`")],
    );
    add(
        "a section key twice",
        format!("{ROOM}http:\n  listen: \"127.0.0.1:1\"\n  listen: \"127.0.0.1:2\"\n"),
        &[(5, "http.listen", "keep one")],
    );
    // Nulls.
    add(
        "psk: ~",
        "rooms:\n  - name: A\n    psk: ~\n".into(),
        &[(
            3,
            "rooms[0].psk",
            "expected text (a password; \"\" for none), found nothing",
        )],
    );
    add(
        "psk left empty",
        "rooms:\n  - name: A\n    psk:\n".into(),
        &[(3, "rooms[0].psk", "found nothing")],
    );
    add(
        "peer secret null",
        format!("{ROOM}peers:\n  - host: h\n    secret: null\n"),
        &[(5, "peers[0].secret", "found nothing")],
    );
    add(
        "a section left empty",
        format!("{ROOM}server:\n"),
        &[(3, "server", "expected a group of `key: value` lines")],
    );
    // Wrong shapes.
    add(
        "rooms as a mapping",
        "rooms:\n  name: A\n".into(),
        &[(
            2,
            "rooms",
            "expected a list of rooms, each starting `- name:`, found a group",
        )],
    );
    add(
        "a room as a string",
        "rooms:\n  - EmergencyNet\n".into(),
        &[(2, "rooms[0]", "write `- name: EmergencyNet`")],
    );
    add(
        "rooms as one word",
        "rooms: Public\n".into(),
        &[(1, "rooms", "expected a list of rooms")],
    );
    add(
        "radio as a list",
        format!("{ROOM}radio:\n  - sim\n"),
        &[(4, "radio", "indented under it, found a list")],
    );
    add(
        "a list where a number goes",
        "rooms:\n  - name: A\n    max_history: [1]\n".into(),
        &[(
            3,
            "rooms[0].max_history",
            "whole number from 1 to 1,000,000, found a list",
        )],
    );
    add(
        "the file is a list",
        "- rooms\n".into(),
        &[(
            1,
            "rooms",
            "the file must be `key: value` sections starting with `rooms:`",
        )],
    );
    // Whole numbers and their ranges.
    add(
        "max_history lots",
        "rooms:\n  - name: A\n    max_history: \"lots\"\n".into(),
        &[(
            3,
            "rooms[0].max_history",
            "expected a whole number from 1 to 1,000,000, found the text \"lots\"",
        )],
    );
    add(
        "max_history -5",
        "rooms:\n  - name: A\n    max_history: -5\n".into(),
        &[(3, "rooms[0].max_history", "from 1 to 1,000,000, found `-5`")],
    );
    add(
        "max_history 1e23",
        "rooms:\n  - name: A\n    max_history: 1e23\n".into(),
        &[(
            3,
            "rooms[0].max_history",
            "from 1 to 1,000,000, found `1e23`",
        )],
    );
    add(
        "max_history 1.5",
        "rooms:\n  - name: A\n    max_history: 1.5\n".into(),
        &[(
            3,
            "rooms[0].max_history",
            "from 1 to 1,000,000, found `1.5`",
        )],
    );
    add(
        "max_history 0",
        "rooms:\n  - name: A\n    max_history: 0\n".into(),
        &[(3, "rooms[0].max_history", "from 1 to 1,000,000, found `0`")],
    );
    add(
        "max_history huge",
        "rooms:\n  - name: A\n    max_history: 99999999999\n".into(),
        &[(3, "rooms[0].max_history", "from 1 to 1,000,000")],
    );
    add(
        "peer port 70000",
        format!("{ROOM}peers:\n  - host: h\n    port: 70000\n    secret: s\n"),
        &[(5, "peers[0].port", "from 1 to 65535, found `70000`")],
    );
    add(
        "a quoted number",
        format!("{ROOM}tun:\n  port: \"7077\"\n"),
        &[(4, "tun.port", "numbers are written without quotes")],
    );
    add(
        "hop_limit 0",
        format!("{ROOM}federation:\n  hop_limit: 0\n"),
        &[(4, "federation.hop_limit", "from 1 to 255")],
    );
    // Other value types.
    add(
        "a boolean as maybe",
        format!("{ROOM}radio:\n  listen_before_talk: maybe\n"),
        &[(
            4,
            "radio.listen_before_talk",
            "expected true or false, found `maybe`",
        )],
    );
    add(
        "a boolean as yes",
        format!("{ROOM}radio:\n  listen_before_talk: yes\n"),
        &[(4, "radio.listen_before_talk", "true or false")],
    );
    add(
        "an unknown backend",
        format!("{ROOM}radio:\n  backend: lora9000\n"),
        &[(4, "radio.backend", "one of sim, sx126x, none")],
    );
    add(
        "tun.enabled maybe",
        format!("{ROOM}tun:\n  enabled: maybe\n"),
        &[(4, "tun.enabled", "auto, on or off")],
    );
    add(
        "a listen address",
        format!("{ROOM}http:\n  listen: not-an-address\n"),
        &[(
            4,
            "http.listen",
            "an address and port such as 127.0.0.1:7070",
        )],
    );
    add(
        "a bad network in a list",
        format!("{ROOM}http:\n  status_allow: [\"10.0.0.0/33\"]\n"),
        &[(4, "http.status_allow[0]", "a network such as")],
    );
    add(
        "one network, not a list",
        format!("{ROOM}http:\n  status_allow: 10.0.0.0/8\n"),
        &[(4, "http.status_allow", "a list of networks")],
    );
    add(
        "an IPv4 address",
        format!("{ROOM}tun:\n  source: 999.1.1.1\n"),
        &[(4, "tun.source", "an IPv4 address")],
    );
    add(
        "latitude 91",
        format!("{ROOM}meshcore:\n  latitude: 91\n"),
        &[(4, "meshcore.latitude", "a number from -90 to 90")],
    );
    add(
        "seconds as a word",
        format!("{ROOM}meshcore:\n  advert_interval_s: soon\n"),
        &[(4, "meshcore.advert_interval_s", "a number from 0 to")],
    );
    add(
        "a pin as a word",
        format!("{ROOM}radio:\n  hold_high_pins: [x]\n"),
        &[(
            4,
            "radio.hold_high_pins[0]",
            "a whole number from 0 to 1023",
        )],
    );
    add(
        "a room named true",
        "rooms:\n  - name: true\n".into(),
        &[(2, "rooms[0].name", "put it in quotes")],
    );
    // Values that used to be changed or accepted quietly.
    add(
        "power above the board",
        format!("{ROOM}radio:\n  power_dbm: 99\n"),
        &[(4, "radio.power_dbm", "at most 22 dBm")],
    );
    add(
        "power above a weaker board",
        format!("{ROOM}radio:\n  board: zebrahat\n  power_dbm: 22\n"),
        &[(
            5,
            "radio.power_dbm",
            "board zebrahat allows (at most 18 dBm)",
        )],
    );
    add(
        "power beyond any board",
        format!("{ROOM}radio:\n  power_dbm: 1000\n"),
        &[(4, "radio.power_dbm", "at most the board's limit")],
    );
    add(
        "an empty state_dir",
        format!("{ROOM}server:\n  state_dir: \"\"\n"),
        &[(4, "server.state_dir", "expected a path (non-empty text)")],
    );
    add(
        "a number as air_dir",
        format!("{ROOM}radio:\n  air_dir: 42\n"),
        &[(4, "radio.air_dir", "expected a path")],
    );
    add(
        "an empty file",
        String::new(),
        &[(
            1,
            "rooms",
            "the file is empty; it needs at least a `rooms:` list with one room",
        )],
    );
    add(
        "comments only",
        "# my gateway\n\n".into(),
        &[(1, "rooms", "holds only comments")],
    );
    // Missing keys.
    add(
        "no rooms",
        "server:\n  name: x\n".into(),
        &[(1, "rooms", "`rooms` is missing")],
    );
    add(
        "a room without a name",
        "rooms:\n  - psk: \"\"\n".into(),
        &[(2, "rooms[0]", "required key `name` is missing")],
    );
    add(
        "a peer without a host",
        format!("{ROOM}peers:\n  - port: 7070\n    secret: s\n"),
        &[(4, "peers[0]", "required key `host` is missing")],
    );
    // Checks across keys, and syntax.
    add(
        "two rooms, one name",
        "rooms:\n  - name: Net\n  - name: NET\n".into(),
        &[(3, "rooms[1].name", "names are compared ignoring case")],
    );
    add(
        "a placeholder psk",
        "rooms:\n  - name: A\n    psk: \"CHANGE-ME\"\n".into(),
        &[(3, "rooms[0].psk", "set a password of your own")],
    );
    add(
        "an unknown board",
        format!("{ROOM}radio:\n  board: nosuchhat\n"),
        &[(4, "radio.board", "unknown board `nosuchhat`; known:")],
    );
    add(
        "a tab",
        "rooms:\n\t- name: A\n".into(),
        &[(2, "rooms[0].name", "YAML indents with spaces only")],
    );
    add(
        "an unclosed bracket",
        "rooms:\n  - name: A\n   bad: [\n".into(),
        &[(3, "rooms[0].bad", "check the indentation")],
    );
    // Several mistakes in one file, at every level, reported together and in order.
    add(
        "several mistakes",
        "server:\n  state_dir: \"\"\nrooms:\n  - name: Public\n    max_histroy: 5\n  - Club\n  - name: public\n    max_history: -1\npeers:\n  - host: h\n    secret: ~\nradio:\n  power_dbm: 30\n  backend: lora\ntun:\n  port: 0\n".into(),
        &[
            (2, "server.state_dir", "expected a path"),
            (5, "rooms[0].max_histroy", "did you mean `max_history`"),
            (6, "rooms[1]", "write `- name: Club`"),
            (7, "rooms[2].name", "already defined as rooms[0]"),
            (8, "rooms[2].max_history", "found `-1`"),
            (11, "peers[0].secret", "found nothing"),
            (13, "radio.power_dbm", "at most 22 dBm"),
            (14, "radio.backend", "one of sim, sx126x, none"),
            (16, "tun.port", "from 1 to 65535, found `0`"),
        ],
    );
    let mut not_utf8 = b"rooms:\n  - name: A\n    description: caf".to_vec();
    not_utf8.extend_from_slice(b"\xe9\n");
    c.push((
        "a Latin-1 file".into(),
        not_utf8,
        vec![(3, "rooms[0].description", "not UTF-8 text: byte 0xE9")],
    ));
    c
}

/// `file:line:column: key.path: message`.
fn split(line: &str) -> Option<(usize, usize, &str, &str)> {
    let rest = line.strip_prefix("gw.yaml:")?;
    let (l, rest) = rest.split_once(':')?;
    let (col, rest) = rest.split_once(": ")?;
    let (key, message) = rest.split_once(": ")?;
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    key_ok.then_some(())?;
    Some((l.parse().ok()?, col.parse().ok()?, key, message))
}

#[test]
fn every_broken_configuration_is_told_in_the_operators_words() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, bytes, expected) in &cases {
        let (code, stdout, stderr) = check(bytes);
        let lines: Vec<&str> = stderr.lines().collect();
        let mut problems = Vec::new();
        if code != 2 {
            problems.push(format!("exit status {code}, not 2 (stdout: {stdout})"));
        }
        if lines.len() != expected.len() {
            problems.push(format!(
                "{} lines, expected {} (one per mistake)",
                lines.len(),
                expected.len()
            ));
        }
        for (got, (line, key, words)) in lines.iter().zip(expected) {
            match split(got) {
                None => problems.push(format!(
                    "not `gw.yaml:line:column: key.path: message`: {got}"
                )),
                Some((l, _col, k, message)) => {
                    if l != *line || k != *key || !message.contains(words) {
                        problems.push(format!(
                            "expected line {line}, key `{key}`, words `{words}`; got: {got}"
                        ));
                    }
                }
            }
        }
        let numbers: Vec<usize> = lines.iter().filter_map(|l| split(l)).map(|s| s.0).collect();
        if numbers.windows(2).any(|w| w[0] > w[1]) {
            problems.push("not ordered by line".into());
        }
        for phrase in LIBRARY_WORDS {
            if stderr.contains(phrase) {
                problems.push(format!("the library's phrase `{phrase}` leaked"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}\n{stderr}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// The example under "Mistakes are errors" in README: the file shown, the command, its output
/// and its exit status, verbatim.
#[test]
fn readme_error_example_is_what_check_config_prints() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("$ cat gw.yaml\n")
        .expect("README shows gw.yaml");
    let block = &readme[start..];
    let block = &block[..block.find("```").expect("the example's end")];
    let (file, rest) = block["$ cat gw.yaml\n".len()..]
        .split_once("$ meshroom-gw check-config --config gw.yaml\n")
        .expect("the command");
    let (output, status) = rest.split_once("$ echo $?\n").expect("the exit status");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gw.yaml"), file).unwrap();
    let (code, stdout, stderr) = run_in(dir.path());
    assert_eq!(stdout, "");
    assert_eq!(stderr, output, "README's example output");
    assert_eq!(code.to_string(), status.trim());
    assert!(output.lines().count() >= 2, "several mistakes in one run");
}

const TABLE_BEGIN: &str = "<!-- config-keys:begin -->\n";
const TABLE_END: &str = "<!-- config-keys:end -->";

/// README's key table is rendered from the table the checker uses. With `MESHROOM_BLESS=1`
/// the test rewrites README's copy instead of comparing.
#[test]
fn readme_key_table_is_the_checkers_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let start = readme.find(TABLE_BEGIN).expect("table start marker") + TABLE_BEGIN.len();
    let end = readme.find(TABLE_END).expect("table end marker");
    let table = meshroom_gw::config::schema::markdown_table();
    if std::env::var_os("MESHROOM_BLESS").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README's key table is stale: run `MESHROOM_BLESS=1 cargo test --test gateway readme_key_table`"
    );
}

#[test]
fn ok_counts_are_pluralised() {
    let (code, stdout, stderr) = check(b"rooms:\n  - name: A\nradio:\n  backend: none\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with(": OK (1 room, 0 peers)\n"), "{stdout}");
}

#[test]
fn listen_help_shows_its_default_once() {
    let out = Command::new(crate::common::BIN)
        .args(["client", "listen", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let line = help
        .lines()
        .find(|l| l.contains("--password"))
        .expect("--password");
    assert_eq!(line.matches("default").count(), 1, "{line}");
}

#[test]
fn generate_man_says_it_created_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/man");
    let out = Command::new(crate::common::BIN)
        .args(["generate", "man"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("created directory"), "{stderr}");
    assert!(dir.join("meshroom-gw.yaml.5").exists());
    // A second run into the same directory says nothing about creating it.
    let again = Command::new(crate::common::BIN)
        .args(["generate", "man"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("created"));
}

#[test]
fn room_names_are_matched_ignoring_case_over_http() {
    let gw = crate::common::Gateway::start(
        "case",
        "rooms:\n  - name: \"EmergencyNet\"\n    psk: \"\"\n",
    );
    gw.try_post("emergencynet", "ops", "hello", None)
        .expect("a post to the room in another case");
    let posts = gw.history("EMERGENCYNET", 10);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(
        posts[0]["room"], "EmergencyNet",
        "kept under the configured name"
    );
    let (code, _) = gw.get("/rooms/nosuchroom/posts").expect("GET");
    assert_eq!(code, 404);
}
