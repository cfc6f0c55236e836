//! A full disk fails every batch the store writer commits: the log says so once, and then
//! only a count once a minute (`ratelog::Throttle`), not an ERROR per batch. The "disk" is the
//! gateway's file size limit (`ulimit -f`, SIGXFSZ ignored): writes past it fail with EFBIG
//! as they would with ENOSPC, without a filesystem of the test's own.

use std::time::Duration;

use crate::common::{free_port, wait_until, Gateway};

#[test]
fn a_full_disk_logs_a_failed_commit_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `sh -c '…' BIN args…`: $0 is the gateway binary, the rest its arguments. 8192 blocks of
    // 512 bytes (dash) or 1 KiB (bash): a few MB, reached after a few hundred posts.
    let prefix = [
        "sh",
        "-c",
        "trap '' XFSZ; ulimit -f 8192 && exec \"$0\" \"$@\"",
    ];
    let mut gw = Gateway::configure(
        "full-disk",
        dir.path(),
        free_port(),
        "rooms:\n  - name: \"Public\"\n    max_history: 100000\n",
        &prefix,
    );
    gw.spawn();
    let filler = "x".repeat(4000);
    let mut failed = 0;
    let mut stored = 0;
    for i in 0..20_000 {
        match gw.try_post("Public", "filler", &format!("{i} {filler}"), None) {
            Ok(_) => stored += 1,
            Err(e) => {
                assert!(
                    e.starts_with('5'),
                    "a refused post that is not the disk: {e}"
                );
                failed += 1;
                // Keep failing for a while: every one of these is a failed batch.
                if failed == 40 {
                    break;
                }
            }
        }
    }
    assert_eq!(
        failed, 40,
        "the file size limit was never reached ({stored} stored)"
    );
    assert!(stored > 0, "nothing was stored before the limit");
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log()
            .contains("store commit failed")),
        "no failed commit in the log:\n{}",
        gw.log()
    );
    let log = gw.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("store commit failed"))
        .count();
    assert_eq!(lines, 1, "one line for 40 failed batches:\n{log}");
    // The gateway is still up and says what it can.
    assert_eq!(gw.get("/status").expect("status").0, 200);
}
