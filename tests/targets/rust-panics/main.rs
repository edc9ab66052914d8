#[inline(never)]
fn inner(v: &[u32]) -> u32 { v[std::hint::black_box(7)] }
fn main() {
    let t = std::thread::Builder::new().name("worker-1".into()).spawn(|| { inner(&[1, 2, 3]); }).unwrap();
    let _ = t.join();
    std::thread::spawn(|| panic!("unnamed thread says {}", 42)).join().ok();
    let v: Option<u32> = None;
    v.expect("config value missing\nsecond line");
}
