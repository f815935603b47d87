use phase_lock::*;
use std::sync::atomic::{AtomicIsize, Ordering::*};
use std::sync::Arc;
#[test]
fn smoke() {
    let l = Arc::new(PhaseLock::new(()));
    let r = Arc::new(AtomicIsize::new(0));
    let i = Arc::new(AtomicIsize::new(0));
    let w = Arc::new(AtomicIsize::new(0));
    let hs: Vec<_> = (0..12).map(|t| { let (l, r, i, w) = (l.clone(), r.clone(), i.clone(), w.clone()); std::thread::spawn(move || {
        for n in 0..20000u32 {
            match (t + n as usize) % 7 {
                0 => { let _g = l.write(); assert_eq!(w.fetch_add(1, SeqCst), 0); assert_eq!(r.load(SeqCst), 0); assert_eq!(i.load(SeqCst), 0); w.fetch_sub(1, SeqCst); }
                1|2|3 => { let _g = l.read(); r.fetch_add(1, SeqCst); assert_eq!(w.load(SeqCst), 0); assert_eq!(i.load(SeqCst), 0); r.fetch_sub(1, SeqCst); }
                4 => { if let Some(_g) = l.try_intent_for(std::time::Duration::from_micros(50)) { i.fetch_add(1, SeqCst); assert_eq!(w.load(SeqCst), 0); assert_eq!(r.load(SeqCst), 0); i.fetch_sub(1, SeqCst);} }
                _ => { let _g = l.intent(); i.fetch_add(1, SeqCst); assert_eq!(w.load(SeqCst), 0); assert_eq!(r.load(SeqCst), 0); i.fetch_sub(1, SeqCst); }
            }
        }
    })}).collect();
    for h in hs { h.join().unwrap(); }
    assert!(!l.is_locked());
}
