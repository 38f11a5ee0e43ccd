//! An event loop running on its own thread for a test, stopped and joined
//! when dropped (also when the test panics).

use std::sync::mpsc;
use std::thread;

use ws::api::event_loop::{EventLoop, LoopRemote};

pub struct LoopThread {
    pub remote: LoopRemote,
    thread: Option<thread::JoinHandle<()>>,
}

impl LoopThread {
    pub fn start() -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut el = EventLoop::new().unwrap();
            tx.send(el.remote()).unwrap();
            el.run().unwrap();
        });
        LoopThread { remote: rx.recv().unwrap(), thread: Some(thread) }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        self.remote.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
