//! A restricted unpickler for the `data.pkl` of a PyTorch checkpoint (`torch.save`, pickle protocols
//! 2 to 5). It builds objects and never calls anything: `GLOBAL` yields a name, `REDUCE` / `NEWOBJ` a
//! call record, `BINPERSID` a persistent-id record (PyTorch's storage references), and `BUILD` state
//! is dropped. `collections.OrderedDict()` becomes a dict so that `SETITEMS` fills it, as in Python.
//!
//! Objects live in one arena and refer to each other by index, so memo references share objects as
//! Python does, dropping is flat (no recursion however deep the nesting), and the work is linear in the
//! input. Every length is checked against the bytes left before anything is allocated, and the arena,
//! memo and stack are capped, so a crafted pickle costs at most a bounded multiple of its size.
//!
//! The opcodes are those of Python's `pickletools` for protocols 2–5 that `torch.save` and the
//! metadata next to a state dict (numbers, strings, lists, dicts, tuples, sets) use.

use std::collections::HashMap;

/// An object's index in the arena.
pub(crate) type Id = usize;

/// The most objects, memo entries or stack entries one pickle may create.
const MAX_OBJECTS: usize = 1 << 21;

/// A Python object as far as a checkpoint needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer that does not.
    BigInt,
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// `bytes` (the content is not kept).
    Bytes,
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list (also sets and frozensets).
    List(Vec<Id>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(Id, Id)>),
    /// `module.name`.
    Global(String, String),
    /// `callable(*args)`, not called.
    Call(Id, Id),
    /// A persistent id (PyTorch: `('storage', type, key, location, numel)`).
    PersId(Id),
}

/// An unpickled object graph.
#[derive(Debug)]
pub(crate) struct Pickle {
    objs: Vec<Obj>,
    root: Id,
}

impl Pickle {
    /// The object the pickle returns.
    pub(crate) fn root(&self) -> Id {
        self.root
    }

    /// The object `id`.
    pub(crate) fn get(&self, id: Id) -> &Obj {
        &self.objs[id]
    }

    /// The string `id`, if it is one.
    pub(crate) fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer `id`, if it is one (a bool counts, as in Python).
    pub(crate) fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Obj::Int(v) => Some(*v),
            Obj::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The items of tuple `id`, if it is one.
    pub(crate) fn tuple(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Obj::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The entries of dict `id`, if it is one.
    pub(crate) fn dict(&self, id: Id) -> Option<&[(Id, Id)]> {
        match self.get(id) {
            Obj::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under the string key `key` of dict `id`.
    pub(crate) fn lookup(&self, id: Id, key: &str) -> Option<Id> {
        self.dict(id)?
            .iter()
            .find(|(k, _)| self.str(*k) == Some(key))
            .map(|(_, v)| *v)
    }
}

/// Unpickles `data`, or says why not.
pub(crate) fn parse(data: &[u8]) -> Result<Pickle, String> {
    let mut m = Machine {
        input: data,
        pos: 0,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = m.pos;
        let op = m.byte()?;
        if op == b'.' {
            let root = m.pop()?;
            return Ok(Pickle { objs: m.objs, root });
        }
        m.step(op)
            .map_err(|e| format!("{e} (opcode 0x{op:02x} at byte {at})"))?;
    }
}

/// The pickle virtual machine's state.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or_else(|| format!("{n} bytes wanted, {} left", self.input.len() - self.pos))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| "length too large".into())
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.input[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(text)
    }

    fn alloc(&mut self, obj: Obj) -> Result<Id, String> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} objects"));
        }
        self.objs.push(obj);
        Ok(self.objs.len() - 1)
    }

    fn push(&mut self, id: Id) -> Result<(), String> {
        if self.stack.len() >= MAX_OBJECTS {
            return Err(format!("stack deeper than {MAX_OBJECTS}"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, obj: Obj) -> Result<(), String> {
        let id = self.alloc(obj)?;
        self.push(id)
    }

    fn pop(&mut self) -> Result<Id, String> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err("pop across a mark".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> Result<Id, String> {
        match self.stack.last() {
            Some(&id) if self.marks.last() != Some(&self.stack.len()) => Ok(id),
            _ => Err("empty stack".into()),
        }
    }

    /// The items pushed since the last mark, removing them and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let at = self.marks.pop().ok_or("no mark")?;
        Ok(self.stack.split_off(at))
    }

    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let id = self.top()?;
        if self.memo.len() >= MAX_OBJECTS && !self.memo.contains_key(&key) {
            return Err(format!("more than {MAX_OBJECTS} memo entries"));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo {key} unset"))?;
        self.push(id)
    }

    fn string(&mut self, n: usize) -> Result<(), String> {
        let text = std::str::from_utf8(self.take(n)?)
            .map_err(|_| "invalid UTF-8 in a string")?
            .to_owned();
        self.push_new(Obj::Str(text))
    }

    fn bytes(&mut self, n: usize) -> Result<(), String> {
        self.take(n)?;
        self.push_new(Obj::Bytes)
    }

    /// A little-endian two's-complement integer of `n` bytes (`LONG1`, `LONG4`).
    fn long(&mut self, n: usize) -> Result<(), String> {
        let bytes = self.take(n)?;
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let fill = if negative { 0xff } else { 0 };
        let (low, high) = bytes.split_at(n.min(8));
        let mut buf = [fill; 8];
        buf[..low.len()].copy_from_slice(low);
        let value = i64::from_le_bytes(buf);
        // Bytes beyond the eighth must only repeat the sign for the value to fit in an i64.
        let fits = high.iter().all(|&b| b == fill) && (value < 0) == negative;
        self.push_new(if fits { Obj::Int(value) } else { Obj::BigInt })
    }

    /// The list (or dict) `id` on the stack below the new items, for `APPEND(S)` / `SETITEM(S)`.
    fn extend(&mut self, items: Vec<Id>, pairs: bool) -> Result<(), String> {
        let target = self.top()?;
        match (&mut self.objs[target], pairs) {
            (Obj::List(list), false) => list.extend(items),
            (Obj::Dict(dict), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err("odd number of dict items".into());
                }
                dict.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
            }
            _ => return Err("appending to an object that is not a list or dict".into()),
        }
        Ok(())
    }

    fn call(&mut self, callable: Id, args: Id) -> Result<(), String> {
        let ordered_dict = matches!(
            &self.objs[callable],
            Obj::Global(m, n) if m == "collections" && n == "OrderedDict"
        );
        if ordered_dict {
            self.push_new(Obj::Dict(Vec::new()))
        } else {
            self.push_new(Obj::Call(callable, args))
        }
    }

    fn step(&mut self, op: u8) -> Result<(), String> {
        match op {
            0x80 => {
                let proto = self.byte()?;
                if !(2..=5).contains(&proto) {
                    return Err(format!("pickle protocol {proto} is not supported"));
                }
            }
            0x95 => {
                self.take(8)?;
            }
            b'(' => {
                if self.marks.len() >= MAX_OBJECTS {
                    return Err("too many marks".into());
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let id = self.top()?;
                self.push(id)?;
            }
            b'N' => self.push_new(Obj::None)?,
            0x88 => self.push_new(Obj::Bool(true))?,
            0x89 => self.push_new(Obj::Bool(false))?,
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.push_new(Obj::Int(v.into()))?;
            }
            b'K' => {
                let v = self.byte()?;
                self.push_new(Obj::Int(v.into()))?;
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.push_new(Obj::Int(v.into()))?;
            }
            0x8a => {
                let n = self.byte()? as usize;
                self.long(n)?;
            }
            0x8b => {
                let n = i32::from_le_bytes(self.array()?);
                let n = usize::try_from(n).map_err(|_| "negative LONG4 length")?;
                self.long(n)?;
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push_new(Obj::Float(v))?;
            }
            b'X' => {
                let n = self.len_u32()?;
                self.string(n)?;
            }
            0x8c => {
                let n = self.byte()? as usize;
                self.string(n)?;
            }
            0x8d => {
                let n = self.len_u64()?;
                self.string(n)?;
            }
            b'T' | b'B' => {
                let n = self.len_u32()?;
                self.bytes(n)?;
            }
            b'U' | b'C' => {
                let n = self.byte()? as usize;
                self.bytes(n)?;
            }
            0x8e | 0x96 => {
                let n = self.len_u64()?;
                self.bytes(n)?;
            }
            b')' => self.push_new(Obj::Tuple(Vec::new()))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push_new(Obj::Tuple(items))?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_new(Obj::Tuple(items))?;
            }
            b']' | 0x8f => self.push_new(Obj::List(Vec::new()))?,
            b'l' | 0x91 => {
                let items = self.pop_mark()?;
                self.push_new(Obj::List(items))?;
            }
            b'a' => {
                let item = self.pop()?;
                self.extend(vec![item], false)?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.extend(items, false)?;
            }
            b'}' => self.push_new(Obj::Dict(Vec::new()))?,
            b'd' => {
                let items = self.pop_mark()?;
                if !items.len().is_multiple_of(2) {
                    return Err("odd number of dict items".into());
                }
                let entries = items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect();
                self.push_new(Obj::Dict(entries))?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.extend(vec![key, value], true)?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend(items, true)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push_new(Obj::Global(module, name))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (self.objs[module].clone(), self.objs[name].clone()) {
                    (Obj::Str(m), Obj::Str(n)) => self.push_new(Obj::Global(m, n))?,
                    _ => return Err("STACK_GLOBAL wants two strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.call(callable, args)?;
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let callable = self.pop()?;
                self.call(callable, args)?;
            }
            b'b' => {
                // BUILD sets state on the object below; the state of a checkpoint's objects (an
                // OrderedDict's `_metadata`, say) is not needed.
                self.pop()?;
                self.top()?;
            }
            b'Q' => {
                let id = self.pop()?;
                self.push_new(Obj::PersId(id))?;
            }
            b'q' => {
                let key = self.byte()?;
                self.memo_put(key.into())?;
            }
            b'r' => {
                let key = u32::from_le_bytes(self.array()?);
                self.memo_put(key)?;
            }
            0x94 => {
                let key = u32::try_from(self.memo.len()).map_err(|_| "memo full")?;
                self.memo_put(key)?;
            }
            b'h' => {
                let key = self.byte()?;
                self.memo_get(key.into())?;
            }
            b'j' => {
                let key = u32::from_le_bytes(self.array()?);
                self.memo_get(key)?;
            }
            other => return Err(format!("unsupported opcode 0x{other:02x}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Obj};

    #[test]
    fn reads_a_small_dict() {
        // pickle.dumps({'a': (1, -2, 3.5), 'b': [None, True]}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x87q\x02X\x01\x00\x00\x00bq\x03]q\x04(N\x88eu.";
        let p = parse(data).expect("parse");
        let a = p.lookup(p.root(), "a").expect("a");
        let items = p.tuple(a).expect("tuple");
        assert_eq!(p.int(items[0]), Some(1));
        assert_eq!(p.int(items[1]), Some(-2));
        assert_eq!(p.get(items[2]), &Obj::Float(3.5));
        let b = p.lookup(p.root(), "b").expect("b");
        assert!(matches!(p.get(b), Obj::List(v) if v.len() == 2));
    }

    #[test]
    fn refuses_crafted_lengths_and_stacks() {
        for bad in [
            &b"\x80\x02X\xff\xff\xff\xff."[..],
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.",
            b"\x80\x02.",
            b"\x80\x02(.",
            b"\x80\x02(a.",
            b"\x80\x02h\x05.",
            b"\x80\x02K\x01K\x02s.",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_flat() {
        let mut data = b"\x80\x02)".to_vec();
        data.extend(std::iter::repeat_n(0x85u8, 1_000_000));
        data.push(b'.');
        let p = parse(&data).expect("a million nested tuples");
        assert!(p.tuple(p.root()).is_some());
    }
}
