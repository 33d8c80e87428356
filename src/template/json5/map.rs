//! The strict text being written from a template, and the map from each of its bytes back to
//! the template's, so that serde_json's error positions point where the operator edits.
//!
//! Owns the map: stretches copied byte for byte map one to one; a rewritten stretch (a quoted
//! bare key, a hex number written in decimal, an escape) maps every byte to where the
//! rewritten text starts, so the map never runs backwards or past the template.

/// Strict JSON made from a template's text, with the way back to the text.
#[derive(Debug)]
pub struct Strict {
    pub text: String,
    /// Where each stretch of the strict text starts and where in the template it comes from,
    /// ascending.
    anchors: Vec<Anchor>,
}

/// The start of a stretch of the strict text: at strict offset `at`, from template offset
/// `source`; byte for byte when `copied`, else rewritten (every byte of it stands for
/// `source`, so that the map never runs past what the template holds).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    at: usize,
    source: usize,
    copied: bool,
}

impl Strict {
    /// The byte offset in the template of byte `offset` of the strict text.
    pub fn source_offset(&self, offset: usize) -> usize {
        match self.anchors.partition_point(|a| a.at <= offset) {
            0 => offset,
            n => match self.anchors[n - 1] {
                Anchor {
                    at,
                    source,
                    copied: true,
                } => source + (offset - at),
                Anchor { source, .. } => source,
            },
        }
    }
}

/// The strict text being written, and where each part of it came from.
pub(super) struct Writer<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    anchors: Vec<Anchor>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(src: &'a [u8]) -> Writer<'a> {
        Writer {
            src,
            out: Vec::with_capacity(src.len()),
            anchors: Vec::new(),
        }
    }

    /// How many bytes have been written.
    pub(super) fn len(&self) -> usize {
        self.out.len()
    }

    /// Turn written byte `at` into a space (a trailing comma); it still maps to where it was.
    pub(super) fn blank(&mut self, at: usize) {
        self.out[at] = b' ';
    }

    /// The strict text, if it is UTF-8, with its map.
    pub(super) fn finish(self) -> Result<Strict, std::string::FromUtf8Error> {
        Ok(Strict {
            text: String::from_utf8(self.out)?,
            anchors: self.anchors,
        })
    }

    /// Where the next byte maps to if nothing is said about it: `None` after a rewritten
    /// stretch, which says nothing about what follows it.
    fn projected(&self) -> Option<usize> {
        match self.anchors.last() {
            Some(a) if a.copied => Some(a.source + (self.out.len() - a.at)),
            Some(_) => None,
            None => Some(self.out.len()),
        }
    }

    /// Append `bytes` that stand for the template's bytes from `source` on: copied when the
    /// template holds exactly them there, else a rewrite of what is there.
    pub(super) fn put(&mut self, source: usize, bytes: &[u8]) {
        let copied = self.src.get(source..source + bytes.len()) == Some(bytes);
        if !copied || self.projected() != Some(source) {
            self.anchors.push(Anchor {
                at: self.out.len(),
                source,
                copied,
            });
        }
        self.out.extend_from_slice(bytes);
    }
}
