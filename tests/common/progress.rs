//! A [`Progress`] that keeps the notes a run reports (what the decoder noticed about an image, such
//! as a 16-bit grayscale PNG).

use std::sync::Mutex;

use dinoreg::progress::Progress;

/// Keeps the notes.
#[derive(Default)]
pub struct Notes(Mutex<Vec<String>>);

impl Progress for Notes {
    fn note(&self, message: &str) {
        self.0.lock().expect("notes").push(message.to_string());
    }
}

impl Notes {
    /// The notes so far, leaving none.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("notes"))
    }
}
