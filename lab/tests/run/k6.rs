//! The k6 driver beside the native one: the same rows, the same resends.

use super::*;

#[test]
fn the_k6_and_native_drivers_write_the_same_rows() {
    let (out, scenario) = scenario_in(
        "drivers",
        "tiny.toml",
        "name = \"tiny\"\nduration = \"6s\"\ndrain_timeout = \"30s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[architectures]]\nkind = \"kafka\"\nname = \"kafka-buffered\"\nbatch_size = 50\n",
    );
    let native = read(
        &run_with(&scenario, "native", &out.join("native")),
        "requests.parquet",
    );
    let k6 = read(
        &run_with(&scenario, "k6", &out.join("k6")),
        "requests.parquet",
    );
    assert_eq!(
        native.schema(),
        k6.schema(),
        "the drivers' rows differ in shape"
    );
    for (driver, frame) in [("native", &native), ("k6", &k6)] {
        let architecture = strings(frame, "architecture");
        for arch in ["rest", "kafka-buffered"] {
            let n = architecture.iter().filter(|a| *a == arch).count();
            assert!(
                (115..=121).contains(&n),
                "{driver}: {n} requests for {arch}"
            );
        }
        // Both drivers record what the services answered. On a loaded
        // machine a statement can pass its timeout (a 503): such a row must
        // carry the service's answer, not a failure of the driver's own.
        let ok = bools(frame, "ok");
        let status = floats(frame, "status");
        let failed = ok.iter().filter(|ok| !**ok).count();
        assert!(
            failed * 20 <= ok.len(),
            "{driver}: {failed} of {} failed",
            ok.len()
        );
        for (i, ok) in ok.iter().enumerate() {
            assert!(
                *ok || status[i] >= 500.0,
                "{driver}: row {i} failed without an answer"
            );
        }
        let ids: HashSet<String> = strings(frame, "event_id").into_iter().collect();
        assert_eq!(ids.len(), frame.height(), "{driver}: event ids repeat");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn k6_resends_a_failed_request_with_the_same_event_as_the_native_driver_does() {
    // REST through a 2 s crash, its clients retrying 4 times from 300 ms:
    // k6's attempts of one event become one row, as the native driver's.
    let (out, scenario) = scenario_in(
        "k6-retries",
        "retries.toml",
        "name = \"retries\"\nduration = \"8s\"\ndrain_timeout = \"20s\"\n\
         [workload]\nrate = { shape = \"constant\", rps = 20 }\n\
         retries = { max_retries = 4, backoff = \"300ms\", max_backoff = \"2s\" }\n\
         [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
         [[faults]]\nkind = \"db-crash\"\nat = \"3s\"\nduration = \"2s\"\n",
    );
    let dir = run_with(&scenario, "k6", &out.join("k6"));
    let frame = read(&dir, "requests.parquet");
    let ids: HashSet<String> = strings(&frame, "event_id").into_iter().collect();
    assert_eq!(
        ids.len(),
        frame.height(),
        "an event has one row, whatever its attempts"
    );
    let (attempts, ok, latency) = (
        floats(&frame, "attempts"),
        bools(&frame, "ok"),
        floats(&frame, "latency_ms"),
    );
    let retried: Vec<usize> = (0..frame.height())
        .filter(|i| attempts[*i] >= 2.0)
        .collect();
    assert!(
        !retried.is_empty(),
        "no request was retried through the crash"
    );
    assert!(
        retried.iter().any(|i| ok[*i]),
        "a retried request answered after the database came back"
    );
    for i in retried {
        // Its latency counts from the first attempt: every backoff is in it.
        assert!(latency[i] >= 300.0, "row {i}: {} ms", latency[i]);
        assert!(attempts[i] <= 5.0);
    }
    let _ = std::fs::remove_dir_all(&out);
}
