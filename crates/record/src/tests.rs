use proptest::prelude::*;

use super::*;

fn arb_addr() -> impl Strategy<Value = Addr> {
    any::<u64>().prop_map(Addr)
}

fn arb_build_id() -> impl Strategy<Value = BuildId> {
    proptest::collection::vec(any::<u8>(), BuildId::MIN_LEN..=BuildId::MAX_LEN)
        .prop_map(|b| BuildId::new(b).unwrap())
}

fn arb_text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters.
    any::<String>()
}

fn arb_module() -> impl Strategy<Value = Module> {
    (
        arb_text(),
        proptest::option::of(arb_build_id()),
        arb_addr(),
        proptest::collection::vec(
            (
                arb_addr(),
                any::<u64>(),
                any::<u64>(),
                arb_addr(),
                "[r-][w-][x-]",
            ),
            0..4,
        ),
    )
        .prop_map(|(path, build_id, load_bias, segs)| Module {
            path,
            build_id,
            load_bias,
            segments: segs
                .into_iter()
                .map(|(start, size, file_offset, vaddr, flags)| Segment {
                    start,
                    size,
                    file_offset,
                    vaddr,
                    flags,
                })
                .collect(),
        })
}

fn arb_record() -> impl Strategy<Value = CrashRecord> {
    (
        proptest::collection::vec(arb_module(), 0..4),
        proptest::collection::vec((arb_addr(), any::<bool>(), any::<usize>()), 0..16),
        proptest::option::of(arb_text()),
        proptest::option::of((arb_text(), any::<u32>(), any::<u32>())),
        proptest::option::of(arb_text()),
        any::<u32>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(modules, raw_frames, message, location, thread_name, pid, tid)| {
                let frames = raw_frames
                    .into_iter()
                    .map(|(address, pc, m)| {
                        let module = (!modules.is_empty()).then(|| m % modules.len());
                        Frame {
                            address,
                            kind: if pc {
                                FrameKind::Pc
                            } else {
                                FrameKind::ReturnAddress
                            },
                            module,
                            module_address: module
                                .map(|i| Addr(address.0.wrapping_sub(modules[i].load_bias.0))),
                        }
                    })
                    .collect();
                CrashRecord {
                    format: FORMAT_NAME.into(),
                    version: FORMAT_VERSION,
                    time: "2026-11-28T10:00:00.123Z".into(),
                    kind: Kind::Panic,
                    pid,
                    tid,
                    thread_name,
                    arch: "x86_64".into(),
                    runtimes: vec![Runtime {
                        name: "rust".into(),
                        version: "1.95.0".into(),
                    }],
                    message: message.clone(),
                    location: location.map(|(file, line, column)| Location { file, line, column }),
                    raw_text: message,
                    modules,
                    frames,
                    tasks: vec![],
                    alive_tasks: None,
                }
            },
        )
}

proptest! {
    #[test]
    fn record_round_trips(record in arb_record()) {
        let json = record.to_json_pretty();
        let back = CrashRecord::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn build_id_hex_round_trips(id in arb_build_id()) {
        prop_assert_eq!(BuildId::from_hex(&id.to_hex()).unwrap(), id);
    }

    #[test]
    fn addr_round_trips(a in arb_addr()) {
        prop_assert_eq!(a.to_string().parse::<Addr>().unwrap(), a);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CrashRecord::from_json(&bytes);
    }
}

fn minimal() -> serde_json::Value {
    serde_json::json!({
        "format": "faultline-crash",
        "version": 1,
        "time": "2026-11-28T10:00:00Z",
        "kind": "panic",
        "pid": 42,
        "arch": "x86_64",
        "modules": [{"path": "/app", "build_id": "abcd", "load_bias": "0x1000", "segments": []}],
        "frames": [{"address": "0x1234", "kind": "return_address", "module": 0, "module_address": "0x234"}]
    })
}

fn check_err(value: serde_json::Value, expected: &str) {
    let text = serde_json::to_string_pretty(&value).unwrap();
    let err = CrashRecord::from_json(text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(expected),
        "error {err:?} does not contain {expected:?}"
    );
}

#[test]
fn minimal_record_parses() {
    let text = minimal().to_string();
    let r = CrashRecord::from_json(text.as_bytes()).unwrap();
    assert_eq!(r.frames[0].lookup_address(), Some(0x233));
}

#[test]
fn garbage_fields_are_named() {
    let mut v = minimal();
    v["modules"][0]["build_id"] = "xyz".into();
    check_err(v, "modules[0].build_id");

    let mut v = minimal();
    v["frames"][0]["address"] = "0xnothex".into();
    check_err(v, "frames[0].address");

    let mut v = minimal();
    v["frames"][0]["kind"] = "sideways".into();
    check_err(v, "frames[0].kind");

    let mut v = minimal();
    v["frames"][0]["module"] = 7.into();
    check_err(v, "module index 7 out of range");

    let mut v = minimal();
    v["frames"][0]["module_address"] = "0x999".into();
    check_err(v, "disagrees with address");

    let mut v = minimal();
    v["pid"] = (-1).into();
    check_err(v, "pid");
}

#[test]
fn envelope_errors() {
    let mut v = minimal();
    v["version"] = 2.into();
    check_err(v, "unsupported record version 2");

    let mut v = minimal();
    v["format"] = "something-else".into();
    check_err(v, "not a faultline crash record");

    let err = CrashRecord::from_json(b"{\"format\": \"faultline-crash\", ").unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
    let err = CrashRecord::from_json(b"").unwrap_err();
    assert!(matches!(err, Error::Json { .. }), "{err:?}");
}

#[test]
fn build_id_rejects_bad_input() {
    assert!(BuildId::from_hex("abc").is_err());
    assert!(BuildId::from_hex("zz").is_err());
    assert!(BuildId::from_hex("ab").is_err());
    assert_eq!(BuildId::from_hex("ABcd").unwrap().to_hex(), "abcd");
}

#[test]
fn task_dump_branch_frames_are_validated() {
    let mut v = minimal();
    v["kind"] = "task_dump".into();
    v["frames"] = serde_json::json!([]);
    v["alive_tasks"] = 3.into();
    let good = serde_json::json!({"address": "0x1234", "kind": "return_address", "module": 0, "module_address": "0x234"});
    let bad = serde_json::json!({"address": "0x1234", "kind": "return_address", "module": 0, "module_address": "0x999"});
    v["tasks"] =
        serde_json::json!([{"id": "7", "frames": [good.clone()], "branches": [[good.clone()]]}]);
    let r = CrashRecord::from_json(v.to_string().as_bytes()).unwrap();
    assert_eq!(r.alive_tasks, Some(3));
    assert_eq!(r.tasks[0].branches[0][0].lookup_address(), Some(0x233));

    v["tasks"][0]["branches"][0] = serde_json::json!([good, bad]);
    check_err(v, "tasks[0].branches[0][1].module_address");
}
