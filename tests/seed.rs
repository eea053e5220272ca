//! The seed page (`syncBackAfterProcessing`): the remote key scenario, and its conflict table
//! replayed step by step.

use twinsync::runtime::ConflictPolicy;
use twinsync_tests::*;

#[test]
fn sync_back_stores_the_remote_key_on_the_source() {
    let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
    let (key, twin) = pair.create_and_exalate(issue("Customer cannot log in"));
    let stats = pair.run();

    let external = pair
        .external_issue(&twin)
        .expect("External created the issue");
    let external_key = external.key.clone().unwrap();
    assert!(external_key.starts_with("EXT-"), "{external_key}");
    assert_eq!(external.summary, "Customer cannot log in");
    assert_eq!(external.custom_text("remote issue key"), Some(key.as_str()));
    let internal = pair.internal_issue(&key);
    assert_eq!(
        internal.custom_text("remote issue key"),
        Some(external_key.as_str())
    );

    // Exalate, create + sync back, send back, store: four events, two messages, and the
    // key stored on Internal does not bounce the issue back again.
    assert_eq!(stats.events_done, 4, "{stats:?}");
    assert_eq!(stats.events_failed, 0);
    assert_eq!(stats.messages, 2);
    assert!(unfinished(&pair.internal.node).is_empty());
    assert!(unfinished(&pair.external.node).is_empty());
}

/// With `overwrite` (no longer the default) and no guard, the page's divergence.
#[test]
fn conflict_table_diverges_with_mirror_as_the_page_shows() {
    let (source, target) = replay_conflict_table(
        Side::both("mirror").policy(ConflictPolicy::Overwrite),
        Side::both("remote-key").policy(ConflictPolicy::Overwrite),
    );
    assert_eq!((source.as_str(), target.as_str()), ("Open", "In Progress"));
}

#[test]
fn conflict_table_converges_with_status_guard() {
    let (source, target) = replay_conflict_table(
        Side::both("mirror")
            .incoming("status-guard")
            .policy(ConflictPolicy::Overwrite),
        Side::both("remote-key").policy(ConflictPolicy::Overwrite),
    );
    assert_eq!(
        (source.as_str(), target.as_str()),
        ("In Progress", "In Progress")
    );
}

/// The same table with no guard in the processor, but the connection's policy set to
/// last-writer-wins: the sync back's stale status is recognised as older than the local
/// change, and both sides end with the status set last.
#[test]
fn conflict_table_converges_with_last_writer_wins() {
    let (source, target) = replay_conflict_table(
        Side::both("mirror").policy(ConflictPolicy::LastWriterWins),
        Side::both("remote-key"),
    );
    assert_eq!(
        (source.as_str(), target.as_str()),
        ("In Progress", "In Progress")
    );
}

#[test]
fn later_changes_keep_syncing_both_ways() {
    let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
    let (key, twin) = pair.create_and_exalate(issue("Slow dashboard"));
    pair.run();
    let external_key = pair.external_issue(&twin).unwrap().key.unwrap();

    edit(&pair.internal, &key, |i| {
        i.description = Some("Takes 30 s to load".into())
    });
    pair.run();
    assert_eq!(
        pair.external_issue(&twin).unwrap().description.as_deref(),
        Some("Takes 30 s to load")
    );

    edit(&pair.external, &external_key, |i| {
        i.status = "Resolved".into()
    });
    pair.run();
    assert_eq!(pair.internal_issue(&key).status, "Resolved");
    // Applying a change never echoes it back: both queues are empty.
    assert!(unfinished(&pair.internal.node).is_empty());
    assert!(unfinished(&pair.external.node).is_empty());
}

/// The seed page's race with no configuration at all: `remote-key` on both sides, no
/// conflict policy set. The source changes the status right after exalating, at a moment
/// that differs per round (before or after the target created the issue, before or after
/// its sync back left, before or after it arrived). Every round ends with both sides on
/// the status set last, and the remote key stored on both.
#[test]
fn the_seed_race_converges_with_no_configuration() {
    let mut split = Vec::new();
    for round in 0..20u64 {
        let pair = Pair::new(Side::both("remote-key"), Side::both("remote-key"));
        let (key, twin) = pair.create_and_exalate(issue(&format!("Race {round}")));
        let (int, ext) = (&pair.internal.node, &pair.external.node);
        // The steps of the first sync, in order; the status change goes in at `at`.
        let at = round % 6;
        let mut rng = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for step in 0..6 {
            if step == at {
                edit(&pair.internal, &key, |i| i.status = "In Progress".into());
                int.poll_changes().unwrap();
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match (step + rng % 2) % 3 {
                0 => {
                    int.process_ready(10).unwrap();
                }
                1 => {
                    pair.network.deliver().unwrap();
                }
                _ => {
                    ext.process_ready(10).unwrap();
                }
            }
            pair.clock
                .advance(std::time::Duration::from_millis(1 + rng % 500));
        }
        pair.run();
        let source = pair.internal_issue(&key);
        let target = pair
            .external_issue(&twin)
            .expect("the target has the issue");
        let target_key = target.key.clone().unwrap();
        if source.status != "In Progress"
            || target.status != "In Progress"
            || source.custom_text("remote issue key") != Some(target_key.as_str())
            || target.custom_text("remote issue key") != Some(key.as_str())
        {
            split.push(format!(
                "round {round}: source {} (remote key {:?}), target {} (remote key {:?})",
                source.status,
                source.custom_text("remote issue key"),
                target.status,
                target.custom_text("remote issue key")
            ));
        }
        assert!(
            failed(int).is_empty() && failed(ext).is_empty(),
            "round {round}: sync errors"
        );
    }
    assert!(
        split.is_empty(),
        "{} of 20 rounds split:\n{}",
        split.len(),
        split.join("\n")
    );
}
