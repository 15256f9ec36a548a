//! The broker's faults and runs that share a broker: a slowed and cut
//! link, a partition, a restart, a broker that keeps its log in SQLite,
//! two runs on one broker.

use super::*;

#[test]
fn two_runs_against_one_broker_each_read_only_their_own_events() {
    // A broker that outlives the runs, as an external cluster does: each run
    // writes to topics of its own, so the second's consumer, starting with
    // no stored position on a fresh database, does not store the first
    // run's events.
    let out = std::env::temp_dir().join(format!("faultline-topics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime
        .block_on(faultline_stack::broker::Broker::start(
            &out.join("broker"),
            &"nisshi".parse().unwrap(),
        ))
        .unwrap();
    // Two seeds: the runs' event ids differ, so an event of the first
    // stored by the second shows as stored without an acknowledgement.
    let scenario = |seed: u32| {
        let path = out.join(format!("topics-{seed}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"topics\"\nduration = \"4s\"\ndrain_timeout = \"30s\"\nseed = {seed}\n\
             [stack]\nbroker = \"external\"\nbootstrap_servers = \"{}\"\n\
             [workload]\nrate = {{ shape = \"constant\", rps = 20 }}\n\
             [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 50\n",
                broker.bootstrap()
            ),
        )
        .unwrap();
        path
    };
    for (seed, run) in [(1, "first"), (2, "second")] {
        let dir = run_with(&scenario(seed), "native", &out.join(run));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        let kafka = &summary["architectures"]["kafka"];
        assert_eq!(kafka["acknowledged"], 80, "{run}: {kafka}");
        assert_eq!(kafka["stored"], 80, "{run}: {kafka}");
        assert_eq!(kafka["stored_unacknowledged"], 0, "{run}: {kafka}");
        assert_eq!(kafka["redelivered"], 0, "{run}: {kafka}");
        // Without a fault, the pool's figures are over the whole run.
        let pool = &kafka["database_run"];
        assert_eq!(kafka["database"], serde_json::json!({}), "{run}: {kafka}");
        assert!(pool["writes"].as_u64().unwrap() > 0, "{run}: {pool}");
        let offered = pool["offered_per_s"].as_f64().unwrap();
        assert!((15.0..25.0).contains(&offered), "{run}: {pool}");
        let stored = pool["rows_per_s"].as_f64().unwrap();
        assert!(
            (0.5 * offered..1.5 * offered).contains(&stored),
            "{run}: {pool}"
        );
        let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(
            report.contains("### What bounded the database writes")
                && report.contains("| whole run |"),
            "{run}: {report}"
        );
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_broker_link_is_slowed_then_cut_and_the_producer_shows_it() {
    // Every Kafka client reaches the broker through the proxy it
    // advertises: 300 ms on that link from 2 s, then nothing from 6 s.
    let (out, scenario) = scenario_in(
        "broker-link",
        "broker-link.toml",
        "name = \"broker-link\"\nduration = \"12s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\nclient_timeout = \"3s\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\nbatch_size = 20\n\
         delivery_timeout = \"1s\"\n\
         [[faults]]\nkind = \"broker-latency\"\nat = \"2s\"\nduration = \"3s\"\ndelay = \"300ms\"\n\
         [[faults]]\nkind = \"broker-blackhole\"\nat = \"6s\"\nduration = \"3s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 2);
    assert_eq!(
        strings(&faults, "kind"),
        ["broker-latency", "broker-blackhole"]
    );
    let starts = floats(&faults, "actual_start_s");
    let ends = floats(&faults, "actual_end_s");
    // The producer's answers: slow while the link is slow, failing while it
    // is cut, fine before and after.
    let requests = read(&dir, "requests.parquet");
    let intended: Vec<f64> = floats(&requests, "intended_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let latency = floats(&requests, "latency_ms");
    let ok = bools(&requests, "ok");
    let intended = &intended;
    let within = |from: f64, to: f64| {
        (0..ok.len()).filter(move |&i| intended[i] >= from && intended[i] < to)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let slow = median(
        within(starts[0] + 0.5, ends[0])
            .map(|i| latency[i])
            .collect(),
    );
    let before = median(within(0.5, starts[0]).map(|i| latency[i]).collect());
    assert!(slow >= 300.0, "p50 {slow} ms while the link was slow");
    assert!(before < 100.0, "p50 {before} ms before");
    let cut: Vec<usize> = within(starts[1] + 0.2, ends[1] - 1.2).collect();
    assert!(
        cut.iter().filter(|&&i| !ok[i]).count() * 2 > cut.len(),
        "the producer answered while the link was cut"
    );
    assert!(
        within(ends[1] + 1.5, 12.0).all(|i| ok[i]),
        "the producer did not come back"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_consumer_partition_holds_events_back_while_the_producer_answers_and_loses_none() {
    // Only the consumers' connections to the broker are cut, from 2 s for
    // 4 s: the producers answer throughout, the events sent meanwhile wait
    // in the log and are stored once the link is back, and the lab sees
    // the backlog of each consumer grow, the drop consumer's too (its own
    // gauge stands still while it cannot reach the broker).
    let (out, scenario) = scenario_in(
        "consumer-partition",
        "consumer-partition.toml",
        "name = \"consumer-partition\"\nduration = \"10s\"\ndrain_timeout = \"60s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-drop\"\nconsumer = \"drop\"\n\
         [[faults]]\nkind = \"consumer-partition\"\nat = \"2s\"\nduration = \"4s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 1);
    assert_eq!(strings(&faults, "target"), ["consumer-link"]);
    let (start, end) = (
        floats(&faults, "actual_start_s")[0],
        floats(&faults, "actual_end_s")[0],
    );
    let requests = read(&dir, "requests.parquet");
    let ok = bools(&requests, "ok");
    // The producers' link is untouched (a loaded machine may fail a few).
    let failed = ok.iter().filter(|ok| !**ok).count();
    assert!(
        failed * 50 <= ok.len(),
        "the producers failed {failed} of {}",
        ok.len()
    );
    let stored_frame = read(&dir, "stored.parquet");
    let stored: HashMap<String, f64> = strings(&stored_frame, "event_id")
        .into_iter()
        .zip(floats(&stored_frame, "stored_s"))
        .collect();
    let ids = strings(&requests, "event_id");
    let sent: Vec<f64> = floats(&requests, "intended_us")
        .iter()
        .map(|us| us / 1e6)
        .collect();
    let missing = (0..ids.len())
        .filter(|&i| ok[i] && !stored.contains_key(&ids[i]))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged events lost",
        ids.len()
    );
    // Sent while the consumers were cut off: stored only after the link came back.
    let held: Vec<f64> = (0..ids.len())
        .filter(|&i| ok[i] && sent[i] > start + 0.2 && sent[i] < end - 0.2)
        .map(|i| stored[&ids[i]])
        .collect();
    assert!(
        held.len() > 80,
        "only {} sent during the partition",
        held.len()
    );
    assert!(
        held.iter().all(|stored_s| *stored_s >= end),
        "stored during the partition: {:?}",
        held.iter().filter(|s| **s < end).collect::<Vec<_>>()
    );
    // The lab's backlog of each consumer, during the partition: at 20
    // events/s, more than 2 s of them.
    let metrics = read(&dir, "metrics.parquet");
    let (architecture, metric, t, value) = (
        strings(&metrics, "architecture"),
        strings(&metrics, "metric"),
        floats(&metrics, "t_s"),
        floats(&metrics, "value"),
    );
    for name in ["kafka", "kafka-drop"] {
        let peak = (0..metric.len())
            .filter(|&i| architecture[i] == name && metric[i] == "lab_backlog_messages")
            .filter(|&i| t[i] > start && t[i] <= end)
            .map(|i| value[i])
            .fold(0.0, f64::max);
        assert!(
            peak >= 40.0,
            "{name}: backlog during the partition at most {peak}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broker_restart_is_recovered_end_to_end_and_the_buffered_path_stores_what_follows() {
    // The lab's broker keeps its log in memory: a restart brings back empty
    // topics under new ids. The fault's recovery is verified only once each
    // producer delivers again; the consumers read the new log; every event
    // acknowledged after the restart is stored.
    let (out, scenario) = scenario_in(
        "broker-kill",
        "broker-kill.toml",
        "name = \"broker-kill\"\nduration = \"30s\"\ndrain_timeout = \"60s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-drop\"\nconsumer = \"drop\"\n\
         [[faults]]\nkind = \"broker-kill\"\nat = \"6s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    let faults = all_verified(&dir, 1);
    let back = floats(&faults, "actual_end_s")[0] + floats(&faults, "recovery_ms")[0] / 1000.0;
    // Acknowledged after the producers were seen delivering again: stored.
    let requests = read(&dir, "requests.parquet");
    let stored: HashSet<String> = strings(&read(&dir, "stored.parquet"), "event_id")
        .into_iter()
        .collect();
    let architecture = strings(&requests, "architecture");
    let ids = strings(&requests, "event_id");
    let sent = floats(&requests, "intended_us");
    let ok = bools(&requests, "ok");
    let acknowledged_after = |name: &str| -> Vec<&String> {
        (0..ids.len())
            .filter(|&i| architecture[i] == name && ok[i] && sent[i] / 1e6 > back)
            .map(|i| &ids[i])
            .collect()
    };
    // The buffered path stores every one.
    let after = acknowledged_after("kafka-buffered");
    assert!(after.len() > 100, "only {} answers after", after.len());
    let missing = after.iter().filter(|id| !stored.contains(**id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged after the restart never stored",
        after.len()
    );
    // The drop path's consumer lives on and reads the new log. (Not every
    // event: the restarted broker has been seen to acknowledge records of a
    // replaced idempotent producer that never reach its log.)
    let after = acknowledged_after("kafka-drop");
    let kept = after.iter().filter(|id| stored.contains(**id)).count();
    assert!(kept > 0, "none of {} stored", after.len());
    let summary = json_in(&dir, "summary.json");
    assert_eq!(summary["status"], "complete", "{summary:#}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broker_that_keeps_its_log_in_sqlite_loses_none_of_its_backlog_when_killed() {
    // The consumer is down from 3 s to 11 s, so the broker holds a backlog
    // when it is killed at 6 s. In memory that backlog would be gone; in
    // SQLite every acknowledged event is still there to be stored.
    let (out, scenario) = scenario_in(
        "sqlite-broker",
        "sqlite-broker.toml",
        "name = \"sqlite-broker\"\nduration = \"16s\"\ndrain_timeout = \"60s\"\n\
         [stack]\nbroker = \"nisshi-sqlite\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\n\
         [[faults]]\nkind = \"consumer-kill\"\nat = \"3s\"\nduration = \"8s\"\n\
         [[faults]]\nkind = \"broker-kill\"\nat = \"6s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "native", &out);
    all_verified(&dir, 2);
    let manifest = json_in(&dir, "manifest.json");
    assert_eq!(
        manifest["repetitions"][0]["broker_durable"], true,
        "{manifest:#}"
    );
    assert!(
        manifest["versions"]["broker"]
            .as_str()
            .is_some_and(|v| v.ends_with(" with its log in SQLite")),
        "{manifest:#}"
    );
    let summary = json_in(&dir, "summary.json");
    let kafka = &summary["architectures"]["kafka-buffered"];
    // About 60 events waited on the broker when it was killed.
    let backlog = kafka["peak_backlog"].as_f64().unwrap();
    assert!(backlog >= 40.0, "{kafka:#}");
    assert_eq!(kafka["lost"], 0, "{kafka:#}");
    assert!(kafka["acknowledged"].as_u64().unwrap() >= 300, "{kafka:#}");
    assert_eq!(kafka["stored"], kafka["acknowledged"], "{kafka:#}");
    let _ = std::fs::remove_dir_all(&out);
}
