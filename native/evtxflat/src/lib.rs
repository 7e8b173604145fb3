//! tidehunt's native EVTX flatten: the JSON text of parsed EVTX records (as the Rust
//! `evtx` parser's Python binding gives it) straight into Arrow column buffers.
//!
//! It takes exactly the records that tidehunt's Python fast path (`EvtxRows.add_event`)
//! takes without falling back to the generic flatten: a regular `System`, a flat
//! `EventData` of text, integers, booleans and nulls with plain ASCII names, no
//! `UserData`. Every other record is handed back, untouched, by its index, and Python
//! flattens it as before (with its warnings). Values become text as `scalar_text` writes
//! them; rows are grouped per (channel, event ID) as `WindowsRows` groups them; a
//! column is named by the first spelling of its case-insensitive name in the group.
//!
//! Nothing here can fail on hostile input: a record that does not parse, or is not of
//! the shape above, is simply not taken.
//!
//! `fields_json` builds the findings' fields JSON (`{"key":value,...}` of each event's
//! non-null cells) from Arrow string arrays, escaping text as orjson does, with the GIL
//! released.

use std::borrow::Cow;
use std::fmt;

// aHash: several times faster than SipHash on short names, and keyed at random per
// process like it, so crafted names in hostile evidence cannot aim at its buckets
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

// ---------------------------------------------------------------- JSON values --------

/// A JSON value as the fast path takes it; anything else aborts the record.
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Other,
}

struct ScalarV;

impl<'de> Visitor<'de> for ScalarV {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(if v <= i64::MAX as u64 { Scalar::Int(v as i64) } else { Scalar::UInt(v) })
    }
    fn visit_f64<E>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarV)
    }
}

/// An object key, borrowed from the text where it holds no escape.
struct Key<'a>(Cow<'a, str>);

struct KeyV;

impl<'de> Visitor<'de> for KeyV {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyV)
    }
}

fn not_taken<E: de::Error>() -> E {
    E::custom("not for the fast path")
}

/// Visits a map (or anything, where `any` is true) by key; `f` reads each value.
macro_rules! map_visitor {
    ($name:ident, $out:ty, $what:expr, |$m:ident, $key:ident, $acc:ident| $body:block, other => $other:expr) => {
        struct $name;
        impl<'de> Visitor<'de> for $name {
            type Value = $out;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str($what)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut $m: A) -> Result<Self::Value, A::Error> {
                let mut $acc: $out = Default::default();
                while let Some(Key($key)) = $m.next_key::<Key<'de>>()? {
                    $body
                }
                Ok($acc)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                $other
            }
            fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Self::Value, E> {
                $other
            }
            fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Self::Value, E> {
                $other
            }
            fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Self::Value, E> {
                $other
            }
            fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Self::Value, E> {
                $other
            }
            fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
                $other
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                $other
            }
        }
    };
}

/// `Provider`: `#attributes` `Name` or else `EventSourceName` (Python's `or`).
#[derive(Default)]
struct Attrs2<'a> {
    a: Option<Scalar<'a>>,
    b: Option<Scalar<'a>>,
}

map_visitor!(ProviderAttrsV, Attrs2<'de>, "provider attributes", |m, k, acc| {
    match k.as_ref() {
        "Name" => acc.a = Some(m.next_value()?),
        "EventSourceName" => acc.b = Some(m.next_value()?),
        _ => {
            m.next_value::<IgnoredAny>()?;
        }
    }
}, other => Err(not_taken()));


/// `Provider` is an object (its `#attributes`) or, when it is not, no provider.
#[derive(Default)]
struct Prov<'a>(Option<Attrs2<'a>>);

map_visitor!(ProvV, Prov<'de>, "provider", |m, k, acc| {
    if k == "#attributes" {
        acc.0 = Some(m.next_value_seed(NullOrDefault(ProviderAttrsV))?);
    } else {
        m.next_value::<IgnoredAny>()?;
    }
}, other => Ok(Prov(None)));

/// Null (or an absent value) as None, else the inner visitor.
struct NullOr<V>(V);

/// Null as the default value, a map through the inner visitor, anything else refused.
struct NullOrDefault<V>(V);
impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for NullOrDefault<V>
where
    V::Value: Default,
{
    type Value = V::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(NullOr(self.0)).map(|x| x.unwrap_or_default())
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for NullOr<V> {
    type Value = Option<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(m).map(Some)
    }
    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Self::Value, E> {
        Err(not_taken())
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Self::Value, E> {
        Err(not_taken())
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Self::Value, E> {
        Err(not_taken())
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Self::Value, E> {
        Err(not_taken())
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
        Err(not_taken())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _s: A) -> Result<Self::Value, A::Error> {
        Err(not_taken())
    }
}

/// `EventID`: an integer, or an object whose `#text` is one (absent: none).
#[derive(Default)]
struct Eid(Option<i64>);

struct EidV;
impl<'de> Visitor<'de> for EidV {
    type Value = Eid;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event ID")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Eid(None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Eid(Some(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        if v <= i64::MAX as u64 { Ok(Eid(Some(v as i64))) } else { Err(not_taken()) }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Eid(None);
        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
            if k == "#text" {
                out = match m.next_value::<Scalar<'de>>()? {
                    Scalar::Int(i) => Eid(Some(i)),
                    Scalar::Null => Eid(None),
                    _ => return Err(not_taken()),
                };
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}
impl<'de> Deserialize<'de> for Eid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EidV)
    }
}

/// `TimeCreated`: text, or an object whose `#attributes` `SystemTime` is text.
#[derive(Default)]
struct Tc<'a>(Option<Cow<'a, str>>);

map_visitor!(TcAttrsV, Tc<'de>, "time attributes", |m, k, acc| {
    if k == "SystemTime" {
        acc.0 = match m.next_value::<Scalar<'de>>()? {
            Scalar::Str(s) => Some(s),
            Scalar::Null => None,
            _ => return Err(not_taken()),
        };
    } else {
        m.next_value::<IgnoredAny>()?;
    }
}, other => Err(not_taken()));


struct TcV;
impl<'de> Visitor<'de> for TcV {
    type Value = Tc<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event time")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Tc(None))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Tc(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Tc(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Tc(None);
        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
            if k == "#attributes" {
                out = m.next_value_seed(NullOrDefault(TcAttrsV))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}
impl<'de> Deserialize<'de> for Tc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TcV)
    }
}

/// `Execution` / `Security`: an object whose `#attributes` object holds two values
/// (ignored altogether when either is not an object, as `system_row` ignores them).
#[derive(Default)]
struct Pair<'a>(Option<Scalar<'a>>, Option<Scalar<'a>>);

struct PairAttrsV(&'static str, &'static str);
impl<'de> Visitor<'de> for PairAttrsV {
    type Value = Pair<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Pair::default();
        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
            if k == self.0 {
                out.0 = Some(m.next_value()?);
            } else if k == self.1 {
                out.1 = Some(m.next_value()?);
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// An element whose `#attributes` hold the pair (read through `AnyOrDefault`).
struct PairV(&'static str, &'static str);
impl<'de> Visitor<'de> for PairV {
    type Value = Pair<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an element")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut out = Pair::default();
        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
            if k == "#attributes" {
                out = m.next_value_seed(AnyOrDefault(PairAttrsV(self.0, self.1)))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
    // any other value: `AnyOrDefault`, which it is always read through, gives the default
}

/// A map through the inner visitor; any other value is skipped and gives the default.
struct AnyOrDefault<V>(V);
impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for AnyOrDefault<V>
where
    V::Value: Default,
{
    type Value = V::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(OrDefault(self.0))
    }
}
struct OrDefault<V>(V);
impl<'de, V: Visitor<'de>> Visitor<'de> for OrDefault<V>
where
    V::Value: Default,
{
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(m)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_bool<E>(self, _v: bool) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_i64<E>(self, _v: i64) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_u64<E>(self, _v: u64) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_f64<E>(self, _v: f64) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_str<E>(self, _v: &str) -> Result<Self::Value, E> {
        Ok(Default::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Default::default())
    }
}

/// `System`, as far as tidehunt keeps it.
#[derive(Default)]
struct System<'a> {
    provider: Option<Cow<'a, str>>,
    eid: Option<i64>,
    ts: Option<Cow<'a, str>>,
    rid: Option<i64>,
    channel: Option<Cow<'a, str>>,
    host: Option<Cow<'a, str>>,
    /// Level, Task, Opcode, Keywords, Version, ExecutionProcessID, ExecutionThreadID,
    /// SecurityUserID
    extra: [Option<Scalar<'a>>; 8],
}

fn text_or_null<'a, E: de::Error>(v: Scalar<'a>) -> Result<Option<Cow<'a, str>>, E> {
    match v {
        Scalar::Str(s) => Ok(Some(s)),
        Scalar::Null => Ok(None),
        _ => Err(not_taken()),
    }
}

fn flat<'a, E: de::Error>(v: Scalar<'a>) -> Result<Option<Scalar<'a>>, E> {
    match v {
        Scalar::Null => Ok(None),
        Scalar::Other => Err(not_taken()),
        s => Ok(Some(s)),
    }
}

fn pid<'a, E: de::Error>(v: Option<Scalar<'a>>) -> Result<Option<Scalar<'a>>, E> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(s @ (Scalar::Str(_) | Scalar::Int(_) | Scalar::UInt(_))) => Ok(Some(s)),
        _ => Err(not_taken()),
    }
}

map_visitor!(SystemV, System<'de>, "a System element", |m, k, acc| {
    match k.as_ref() {
        "Provider" => {
            acc.provider = match m.next_value_seed(AnyOrDefault(ProvV))?.0 {
                None => None,
                Some(Attrs2 { a, b }) => match a {
                    Some(Scalar::Str(s)) if !s.is_empty() => Some(s),
                    None | Some(Scalar::Null) | Some(Scalar::Str(_)) => match b {
                        None => None,
                        Some(v) => text_or_null(v)?,
                    },
                    _ => return Err(not_taken()),
                },
            }
        }
        "EventID" => acc.eid = m.next_value::<Eid>()?.0,
        "TimeCreated" => acc.ts = m.next_value::<Tc<'de>>()?.0,
        "EventRecordID" => {
            acc.rid = match m.next_value::<Scalar<'de>>()? {
                Scalar::Int(i) => Some(i),
                Scalar::Null => None,
                _ => return Err(not_taken()),
            }
        }
        "Channel" => acc.channel = text_or_null(m.next_value()?)?,
        "Computer" => acc.host = text_or_null(m.next_value()?)?,
        "Level" => acc.extra[0] = flat(m.next_value()?)?,
        "Task" => acc.extra[1] = flat(m.next_value()?)?,
        "Opcode" => acc.extra[2] = flat(m.next_value()?)?,
        "Keywords" => acc.extra[3] = flat(m.next_value()?)?,
        "Version" => acc.extra[4] = flat(m.next_value()?)?,
        "Execution" => {
            let p = m.next_value_seed(AnyOrDefault(PairV("ProcessID", "ThreadID")))?;
            acc.extra[5] = pid(p.0)?;
            acc.extra[6] = pid(p.1)?;
        }
        "Security" => {
            let p = m.next_value_seed(AnyOrDefault(PairV("UserID", "\u{0}")))?;
            acc.extra[7] = match p.0 {
                None => None,
                Some(v) => flat(v)?,
            };
        }
        _ => {
            m.next_value::<IgnoredAny>()?;
        }
    }
}, other => Err(not_taken()));

impl<'de> DeserializeSeed<'de> for SystemV {
    type Value = System<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// `EventData`: null or an object of scalars whose names do not start with `#`.
#[derive(Default)]
struct Data<'a>(Vec<(Cow<'a, str>, Scalar<'a>)>);

map_visitor!(DataV, Data<'de>, "an EventData element", |m, k, acc| {
    if k.starts_with('#') {
        return Err(not_taken());
    }
    let v: Scalar<'de> = m.next_value()?;
    if let Scalar::Other = v {
        return Err(not_taken());
    }
    acc.0.push((k, v));
}, other => Err(not_taken()));

impl<'de> DeserializeSeed<'de> for DataV {
    type Value = Data<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(NullOr(self)).map(|x| x.unwrap_or_default())
    }
}

#[derive(Default)]
struct Event<'a> {
    system: Option<System<'a>>,
    data: Data<'a>,
}

map_visitor!(EventV, Event<'de>, "an Event object", |m, k, acc| {
    match k.as_ref() {
        "System" => acc.system = Some(m.next_value_seed(SystemV)?),
        "EventData" => acc.data = m.next_value_seed(DataV)?,
        "UserData" => {
            if let Scalar::Null = m.next_value::<Scalar<'de>>()? {
            } else {
                return Err(not_taken());
            }
        }
        _ => {
            m.next_value::<IgnoredAny>()?;
        }
    }
}, other => Err(not_taken()));

/// `$parse(text)`: the record's `Event` through the `$seed` visitor (a `$ev`), if it
/// parses whole and has a System element.
macro_rules! record_parser {
    ($parse:ident, $top:ident, $topv:ident, $seed:ident, $ev:ident) => {
        impl<'de> DeserializeSeed<'de> for $seed {
            type Value = $ev<'de>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }

        #[derive(Default)]
        struct $top<'a>(Option<$ev<'a>>);

        map_visitor!($topv, $top<'de>, "a record", |m, k, acc| {
            if k == "Event" {
                acc.0 = Some(m.next_value_seed($seed)?);
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }, other => Err(not_taken()));

        fn $parse(text: &str) -> Option<$ev<'_>> {
            let mut de = serde_json::Deserializer::from_str(text);
            let top = de.deserialize_any($topv).ok()?;
            de.end().ok()?;
            let ev = top.0?;
            ev.system.as_ref()?;
            Some(ev)
        }
    };
}

record_parser!(parse, Top, TopV, EventV, Event);

// ------------------------------------------------------- the generic flatten --------
//
// Records whose EventData or UserData is nested (objects, lists, `#text`, attributes):
// `event_row` + `flatten_into` of `_winrows.py`, rule for rule, over the values in
// document order (`preserve_order`: a repeated key keeps its first place and its last
// value, as a Python dict does). Floats are left to Python (their text is Python's repr).

use serde_json::{Map, Value};

#[derive(Default)]
struct GEvent<'a> {
    system: Option<System<'a>>,
    data: Option<Value>,
    user: Option<Value>,
}

map_visitor!(GEventV, GEvent<'de>, "an Event object", |m, k, acc| {
    match k.as_ref() {
        "System" => acc.system = Some(m.next_value_seed(SystemV)?),
        "EventData" => acc.data = Some(m.next_value()?),
        "UserData" => acc.user = Some(m.next_value()?),
        _ => {
            m.next_value::<IgnoredAny>()?;
        }
    }
}, other => Err(not_taken()));

record_parser!(parse_generic, GTop, GTopV, GEventV, GEvent);

/// Not for this flatten: the record goes back to Python.
struct Refuse;

fn num_text(n: &serde_json::Number) -> Result<String, Refuse> {
    if let Some(i) = n.as_i64() {
        Ok(itoa::Buffer::new().format(i).to_owned())
    } else if let Some(u) = n.as_u64() {
        Ok(itoa::Buffer::new().format(u).to_owned())
    } else {
        Err(Refuse)
    }
}

/// `scalar_text`: None for null and for an object without `#text`.
fn scalar_text(v: &Value) -> Result<Option<String>, Refuse> {
    Ok(match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_owned()),
        Value::Number(n) => Some(num_text(n)?),
        Value::Array(xs) => {
            let mut parts: Vec<String> = Vec::with_capacity(xs.len());
            for x in xs {
                if let Some(p) = scalar_text(x)? {
                    parts.push(p);
                }
            }
            Some(parts.join("\n"))
        }
        Value::Object(o) => match o.get("#text") {
            Some(t) => scalar_text(t)?,
            None => None,
        },
    })
}

/// A flattened row's extra columns: first spelling of an exact name wins.
struct Row<'r> {
    reserved: &'r HashSet<String>,
    seen: HashSet<String>,
    cols: Vec<(String, String)>,
}

impl Row<'_> {
    /// `_key`: reserved names get a trailing underscore (ASCII names only).
    fn key(&self, k: &str) -> Result<String, Refuse> {
        if !k.is_ascii() {
            return Err(Refuse);
        }
        Ok(if self.reserved.contains(&k.to_ascii_lowercase()) { format!("{k}_") } else { k.to_owned() })
    }
    fn put(&mut self, key: String, value: String) {
        if !self.seen.contains(&key) {
            self.seen.insert(key.clone());
            self.cols.push((key, value));
        }
    }
    /// `flatten_into` of one entry.
    fn entry(&mut self, k: &str, v: &Value) -> Result<(), Refuse> {
        match v {
            Value::Object(o) => {
                if o.contains_key("#text") || o.is_empty() {
                    if let Some(t) = o.get("#text") {
                        if let Some(t) = scalar_text(t)? {
                            let key = self.key(k)?;
                            self.put(key, t);
                        }
                    }
                    if let Some(Value::Object(a)) = o.get("#attributes") {
                        self.items(a)?;
                    }
                    Ok(())
                } else {
                    self.items(o)
                }
            }
            _ => {
                if let Some(t) = scalar_text(v)? {
                    let key = self.key(if k == "#text" { "Data" } else { k })?;
                    self.put(key, t);
                }
                Ok(())
            }
        }
    }
    fn items(&mut self, o: &Map<String, Value>) -> Result<(), Refuse> {
        for (k, v) in o {
            self.entry(k, v)?;
        }
        Ok(())
    }
    /// `event_row`'s loop over one of EventData and UserData.
    fn node(&mut self, node: &Option<Value>) -> Result<(), Refuse> {
        match node {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Object(o)) => {
                for (k, v) in o {
                    match v {
                        Value::String(s) => {
                            let key = self.key(k)?;
                            self.put(key, s.clone());
                        }
                        Value::Null => {}
                        Value::Number(n) if n.is_i64() || n.is_u64() => {
                            let key = self.key(k)?;
                            self.put(key, num_text(n)?);
                        }
                        _ => self.entry(k, v)?,
                    }
                }
                Ok(())
            }
            Some(other) => {
                if let Some(t) = scalar_text(other)? {
                    if !t.is_empty() {
                        self.put("Data".to_owned(), t);
                    }
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------- columns ------------

#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Bits {
    fn push(&mut self, valid: bool) {
        if self.len % 8 == 0 {
            self.bytes.push(0);
        }
        if valid {
            self.bytes[self.len / 8] |= 1 << (self.len % 8);
        } else {
            self.nulls += 1;
        }
        self.len += 1;
    }
}

struct StrCol {
    valid: Bits,
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl StrCol {
    fn new() -> Self {
        StrCol { valid: Bits::default(), offsets: vec![0], data: Vec::new() }
    }
    fn len(&self) -> usize {
        self.valid.len
    }
    fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.offsets.push(self.data.len() as i32);
        self.valid.push(true);
    }
    fn push_null(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.valid.push(false);
    }
    fn push_opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.push(s.as_bytes()),
            None => self.push_null(),
        }
    }
    fn pad_to(&mut self, n: usize) {
        while self.len() < n {
            self.push_null();
        }
    }
    fn to_py(&self, py: Python) -> PyObject {
        let valid: PyObject = if self.valid.nulls == 0 {
            py.None()
        } else {
            PyBytes::new(py, &self.valid.bytes).into()
        };
        let offsets = unsafe {
            std::slice::from_raw_parts(self.offsets.as_ptr() as *const u8, self.offsets.len() * 4)
        };
        (self.valid.nulls, valid, PyBytes::new(py, offsets), PyBytes::new(py, &self.data))
            .into_py(py)
    }
}

#[derive(Default)]
struct IntCol {
    valid: Bits,
    values: Vec<i64>,
}

impl IntCol {
    fn push(&mut self, v: Option<i64>) {
        self.values.push(v.unwrap_or(0));
        self.valid.push(v.is_some());
    }
    fn to_py(&self, py: Python) -> PyObject {
        let valid: PyObject = if self.valid.nulls == 0 {
            py.None()
        } else {
            PyBytes::new(py, &self.valid.bytes).into()
        };
        let values = unsafe {
            std::slice::from_raw_parts(self.values.as_ptr() as *const u8, self.values.len() * 8)
        };
        (self.valid.nulls, valid, PyBytes::new(py, values)).into_py(py)
    }
}

/// One (channel, event ID) partition.
struct Part {
    n: usize,
    provider: StrCol,
    ts: StrCol,
    channel: StrCol,
    host: StrCol,
    event_id: IntCol,
    record_id: IntCol,
    locator: StrCol,
    owners: Vec<i32>,
    /// column index by global lower-case name id (u32::MAX: none yet)
    col_of: Vec<u32>,
    cols: Vec<(String, StrCol)>,
}

impl Part {
    fn new() -> Self {
        Part {
            n: 0,
            provider: StrCol::new(),
            ts: StrCol::new(),
            channel: StrCol::new(),
            host: StrCol::new(),
            event_id: IntCol::default(),
            record_id: IntCol::default(),
            locator: StrCol::new(),
            owners: Vec::new(),
            col_of: Vec::new(),
            cols: Vec::new(),
        }
    }

    fn put(&mut self, lid: u32, name: &str, text: &[u8]) {
        let l = lid as usize;
        if self.col_of.len() <= l {
            self.col_of.resize(l + 1, u32::MAX);
        }
        let mut ci = self.col_of[l];
        if ci == u32::MAX {
            ci = self.cols.len() as u32;
            self.col_of[l] = ci;
            self.cols.push((name.to_owned(), StrCol::new()));
        }
        let col = &mut self.cols[ci as usize].1;
        col.pad_to(self.n);
        col.push(text);
    }
}

/// What is known of one EventData key: its lower-case name id and column name.
struct KeyInfo {
    lid: u32,
    name: String,
    ok: bool,
}

/// Text held before records are no longer taken (Arrow's 32-bit offsets).
const MAX_BYTES: usize = 1 << 30;

const EXTRA: [&str; 8] = [
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "Version",
    "ExecutionProcessID",
    "ExecutionThreadID",
    "SecurityUserID",
];

/// Buffered rows of the records taken, per (channel, event ID), until `take`.
#[pyclass(module = "tidehunt._evtxflat")]
struct Buffer {
    reserved: HashSet<String>,
    keys: HashMap<String, u32>,
    kinfo: Vec<KeyInfo>,
    /// scratch: the key ids of the record being taken
    kis: Vec<u32>,
    lids: HashMap<String, u32>,
    stamp: Vec<u32>,
    recno: u32,
    by_chan: HashMap<String, HashMap<Option<i64>, usize>>,
    no_chan: HashMap<Option<i64>, usize>,
    parts: Vec<Part>,
    #[pyo3(get)]
    n: usize,
    #[pyo3(get)]
    nbytes: usize,
}

impl Buffer {
    fn lid(&mut self, lower: &str) -> u32 {
        if let Some(&l) = self.lids.get(lower) {
            return l;
        }
        let l = self.lids.len() as u32;
        self.lids.insert(lower.to_owned(), l);
        l
    }

    /// The id of an EventData key (an index in ``kinfo``).
    fn key_info(&mut self, k: &str) -> u32 {
        if let Some(&ki) = self.keys.get(k) {
            return ki;
        }
        let ascii = k.is_ascii();
        let lower = k.to_ascii_lowercase();
        let name = if self.reserved.contains(&lower) { format!("{k}_") } else { k.to_owned() };
        let lname = name.to_ascii_lowercase();
        let lid = self.lid(&lname);
        let ok = ascii && lid as usize >= EXTRA.len();
        let ki = self.kinfo.len() as u32;
        self.kinfo.push(KeyInfo { lid, name, ok });
        self.keys.insert(k.to_owned(), ki);
        ki
    }

    fn part_index(&mut self, channel: Option<&str>, eid: Option<i64>) -> usize {
        let map = match channel {
            None => &mut self.no_chan,
            Some(c) => {
                if !self.by_chan.contains_key(c) {
                    self.by_chan.insert(c.to_owned(), HashMap::default());
                }
                self.by_chan.get_mut(c).unwrap()
            }
        };
        if let Some(&i) = map.get(&eid) {
            return i;
        }
        let i = self.parts.len();
        map.insert(eid, i);
        self.parts.push(Part::new());
        i
    }

    /// Take one record; false (nothing buffered) if it is not for the fast path.
    fn take_one(&mut self, text: &str, parser_rid: Option<i64>, owner: i32) -> bool {
        let ev = match parse(text) {
            Some(ev) => ev,
            None => return self.take_generic(text, parser_rid, owner),
        };
        if self.keys.len() >= 1 << 18 {
            self.keys.clear(); // hostile input with endless names: keep the cache bounded
            self.kinfo.clear();
        }
        // EventData names: plain ASCII, distinct without case, none meeting System's
        self.recno = self.recno.wrapping_add(1);
        if self.recno == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.recno = 1;
        }
        let mut kis = std::mem::take(&mut self.kis);
        kis.clear();
        for (k, _) in ev.data.0.iter() {
            let ki = self.key_info(k);
            let KeyInfo { lid, ok, .. } = self.kinfo[ki as usize];
            if !ok {
                self.kis = kis;
                return self.take_generic(text, parser_rid, owner);
            }
            let l = lid as usize;
            if self.stamp.len() <= l {
                self.stamp.resize(l + 1, 0);
            }
            if self.stamp[l] == self.recno {
                self.kis = kis;
                return self.take_generic(text, parser_rid, owner);
            }
            self.stamp[l] = self.recno;
            kis.push(ki);
        }
        let sys = ev.system.unwrap();
        let pi = self.push_system(&sys, text, parser_rid, owner);
        let mut ibuf = itoa::Buffer::new();
        let kinfo = &self.kinfo;
        let part = &mut self.parts[pi];
        for ((_, v), &ki) in ev.data.0.iter().zip(kis.iter()) {
            if let Scalar::Null = v {
                continue;
            }
            let info = &kinfo[ki as usize];
            put_scalar(part, info.lid, &info.name, v, &mut ibuf);
        }
        part.n += 1;
        self.n += 1;
        self.kis = kis;
        true
    }

    /// The declared values and System's extra ones of a record; its partition's index.
    fn push_system(&mut self, sys: &System, text: &str, parser_rid: Option<i64>, owner: i32) -> usize {
        let pi = self.part_index(sys.channel.as_deref(), sys.eid);
        let mut ibuf = itoa::Buffer::new();
        let part = &mut self.parts[pi];
        part.provider.push_opt(sys.provider.as_deref());
        part.ts.push_opt(sys.ts.as_deref());
        part.channel.push_opt(sys.channel.as_deref());
        part.host.push_opt(sys.host.as_deref());
        part.event_id.push(sys.eid);
        part.record_id.push(sys.rid.or(parser_rid));
        match parser_rid {
            Some(r) => part.locator.push(ibuf.format(r).as_bytes()),
            None => part.locator.push(b"None"),
        }
        part.owners.push(owner);
        for (i, v) in sys.extra.iter().enumerate() {
            if let Some(v) = v {
                put_scalar(part, i as u32, EXTRA[i], v, &mut ibuf);
            }
        }
        self.nbytes += text.len() + 32; // bounds the text this record adds
        pi
    }

    /// A record with nested EventData or UserData, through the generic flatten.
    fn take_generic(&mut self, text: &str, parser_rid: Option<i64>, owner: i32) -> bool {
        let ev = match parse_generic(text) {
            Some(ev) => ev,
            None => return false,
        };
        let sys = ev.system.as_ref().unwrap();
        let mut row = Row { reserved: &self.reserved, seen: Default::default(), cols: Vec::new() };
        for k in ["provider", "event_id", "ts", "record_id", "channel", "host"] {
            row.seen.insert(k.to_owned());
        }
        for (i, v) in sys.extra.iter().enumerate() {
            if v.is_some() {
                row.seen.insert(EXTRA[i].to_owned());
            }
        }
        if row.node(&ev.data).is_err() || row.node(&ev.user).is_err() {
            return false;
        }
        let cols = row.cols;
        // distinct without case (System's values included); a System name only as itself
        self.recno = self.recno.wrapping_add(1);
        if self.recno == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.recno = 1;
        }
        let mut lids: Vec<u32> = Vec::with_capacity(cols.len());
        for (i, v) in sys.extra.iter().enumerate() {
            if v.is_some() {
                self.stamp_lid(i as u32);
            }
        }
        for (k, _) in cols.iter() {
            let lid = self.lid(&k.to_ascii_lowercase());
            if (lid as usize) < EXTRA.len() && k != EXTRA[lid as usize] {
                return false;
            }
            if !self.stamp_lid(lid) {
                return false;
            }
            lids.push(lid);
        }
        let pi = self.push_system(sys, text, parser_rid, owner);
        let part = &mut self.parts[pi];
        for ((k, v), lid) in cols.iter().zip(lids) {
            part.put(lid, k, v.as_bytes());
        }
        part.n += 1;
        self.n += 1;
        true
    }

    /// Mark a lower-case name id as met in this record; false if it already was.
    fn stamp_lid(&mut self, lid: u32) -> bool {
        let l = lid as usize;
        if self.stamp.len() <= l {
            self.stamp.resize(l + 1, 0);
        }
        if self.stamp[l] == self.recno {
            return false;
        }
        self.stamp[l] = self.recno;
        true
    }
}

fn put_scalar(part: &mut Part, lid: u32, name: &str, v: &Scalar, ibuf: &mut itoa::Buffer) {
    match v {
        Scalar::Str(s) => part.put(lid, name, s.as_bytes()),
        Scalar::Int(i) => part.put(lid, name, ibuf.format(*i).as_bytes()),
        Scalar::UInt(u) => part.put(lid, name, ibuf.format(*u).as_bytes()),
        Scalar::Bool(b) => part.put(lid, name, if *b { b"true" } else { b"false" }),
        Scalar::Null | Scalar::Other => {}
    }
}

#[pymethods]
impl Buffer {
    /// `reserved`: lower-case declared column names an EventData key must not shadow.
    #[new]
    fn new(reserved: Vec<String>) -> Self {
        let mut b = Buffer {
            reserved: reserved.into_iter().collect(),
            keys: HashMap::default(),
            kinfo: Vec::new(),
            kis: Vec::new(),
            lids: HashMap::default(),
            stamp: Vec::new(),
            recno: 0,
            by_chan: HashMap::default(),
            no_chan: HashMap::default(),
            parts: Vec::new(),
            n: 0,
            nbytes: 0,
        };
        for k in EXTRA {
            b.lid(&k.to_ascii_lowercase());
        }
        b
    }

    /// Buffer what can be taken of `records` (the parser's dicts: ``data``, the record's
    /// JSON text, and ``event_record_id``), rows owned by artefact number `owner`.
    /// Returns the indices of the records not taken, in order.
    fn add(&mut self, records: &PyList, owner: i32) -> PyResult<Vec<usize>> {
        let mut rest = Vec::new();
        for (i, item) in records.iter().enumerate() {
            if self.nbytes >= MAX_BYTES {
                rest.push(i); // the caller flushes; i32 offsets stay far from overflow
                continue;
            }
            let d = match item.downcast::<PyDict>() {
                Ok(d) => d,
                Err(_) => {
                    rest.push(i);
                    continue;
                }
            };
            let text = match d.get_item("data").map(|t| t.downcast::<PyString>()) {
                Some(Ok(s)) => match s.to_str() {
                    Ok(t) => t,
                    Err(_) => {
                        rest.push(i);
                        continue;
                    }
                },
                _ => {
                    rest.push(i);
                    continue;
                }
            };
            let rid = match d.get_item("event_record_id") {
                None => None,
                Some(r) if r.is_none() => None,
                Some(r) => match r.extract::<i64>() {
                    Ok(v) if !r.is_instance_of::<pyo3::types::PyBool>().unwrap_or(true) => Some(v),
                    _ => {
                        rest.push(i);
                        continue;
                    }
                },
            };
            if !self.take_one(text, rid, owner) {
                rest.push(i);
            }
        }
        Ok(rest)
    }

    /// Hand over every partition and empty the buffer: a list of tuples
    /// ``(n, provider, ts, channel, host, event_id, record_id, locator, owners, columns)``;
    /// text columns are ``(null_count, validity or None, int32 offsets, data)``, integer
    /// ones ``(null_count, validity or None, int64 values)``, ``owners`` int32 bytes,
    /// ``columns`` a list of ``(name, text column)``.
    fn take(&mut self, py: Python) -> PyResult<PyObject> {
        let parts = std::mem::take(&mut self.parts);
        self.by_chan.clear();
        self.no_chan.clear();
        self.n = 0;
        self.nbytes = 0;
        let out = PyList::empty(py);
        for mut p in parts {
            let n = p.n;
            let cols = PyList::empty(py);
            for (name, col) in p.cols.iter_mut() {
                col.pad_to(n);
                let t: PyObject = (name.as_str(), col.to_py(py)).into_py(py);
                cols.append(t)?;
            }
            let owners = unsafe {
                std::slice::from_raw_parts(p.owners.as_ptr() as *const u8, p.owners.len() * 4)
            };
            let t = PyTuple::new(
                py,
                &[
                    n.into_py(py),
                    p.provider.to_py(py),
                    p.ts.to_py(py),
                    p.channel.to_py(py),
                    p.host.to_py(py),
                    p.event_id.to_py(py),
                    p.record_id.to_py(py),
                    p.locator.to_py(py),
                    PyBytes::new(py, owners).into(),
                    cols.into(),
                ],
            );
            out.append(t)?;
        }
        Ok(out.into())
    }
}

// ------------------------------------------------------------- fields JSON --------

/// Memory of a Python buffer, held (with its `PyBuffer`) for the length of a call.
#[derive(Clone, Copy)]
struct Raw {
    ptr: usize,
    len: usize,
}

impl Raw {
    fn of(buf: &PyBuffer<i8>) -> Raw {
        Raw { ptr: buf.buf_ptr() as usize, len: buf.len_bytes() }
    }
    /// SAFETY: the `PyBuffer` this was taken from is alive and nothing writes to it.
    unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr as *const u8, self.len)
        }
    }
}

/// One column of `fields_json`: an Arrow `string` array (validity, int32 offsets, data,
/// the array's offset) and what goes before each of its values; or a dictionary array,
/// whose validity and int32 indices are these (``offsets`` the indices) and whose values
/// are the `string` array `dict` (offsets, data, offset, length).
struct JsonCol {
    prefix: Vec<u8>,
    quote: bool,
    valid: Option<Raw>,
    offsets: Raw,
    data: Raw,
    offset: usize,
    dict: Option<(Raw, Raw, usize, usize)>,
}

/// How a byte is written inside a JSON string, as orjson writes it: 0 as it is, else
/// the escape's length (`\"`, `\\`, `\b \t \n \f \r`: 2; other control bytes `\u00xx`: 6).
const fn escape_width(b: u8) -> u8 {
    match b {
        b'"' | b'\\' | 0x08 | 0x09 | 0x0a | 0x0c | 0x0d => 2,
        0x00..=0x1f => 6,
        _ => 0,
    }
}

const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = escape_width(b as u8);
        b += 1;
    }
    t
};

/// The bytes `escape_into` writes for `text`.
fn escaped_len(text: &[u8]) -> usize {
    text.iter().map(|&b| match ESCAPE[b as usize] {
        0 => 1,
        w => w as usize,
    }).sum()
}

/// `text` escaped as the inside of a JSON string into `out` at `w` (exactly
/// `escaped_len(text)` bytes): `"` and `\` escaped, the control characters as
/// `\b \t \n \f \r` or `\u00xx`, everything else (UTF-8 included) as it is.
fn escape_into(text: &[u8], out: &mut [u8], w: &mut usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if ESCAPE[b as usize] == 0 {
            continue;
        }
        let run = &text[start..i];
        out[*w..*w + run.len()].copy_from_slice(run);
        *w += run.len();
        let esc: [u8; 6];
        let bytes: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            _ => {
                esc = [b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]];
                &esc
            }
        };
        out[*w..*w + bytes.len()].copy_from_slice(bytes);
        *w += bytes.len();
        start = i + 1;
    }
    let run = &text[start..];
    out[*w..*w + run.len()].copy_from_slice(run);
    *w += run.len();
}

fn offset_at(offsets: &[u8], i: usize) -> usize {
    let b = &offsets[i * 4..i * 4 + 4];
    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fn index_at(indices: &[u8], i: usize) -> i32 {
    let b = &indices[i * 4..i * 4 + 4];
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// A column's buffers as slices, checked: every value's bounds are within its data and
/// every index within its dictionary.
struct ColView<'a> {
    valid: Option<&'a [u8]>,
    offsets: &'a [u8],
    data: &'a [u8],
    /// (offsets, data, offset) of a dictionary column's values.
    dict: Option<(&'a [u8], &'a [u8], usize)>,
    offset: usize,
}

impl<'a> ColView<'a> {
    /// SAFETY: the buffers `c` was taken from are alive and unchanged while this is used.
    /// `check`: check the bounds of every value (not again for a column already checked).
    unsafe fn of(c: &JsonCol, n: usize, check: bool) -> Result<ColView<'a>, String> {
        let v = ColView {
            valid: c.valid.map(|v| v.bytes()),
            offsets: c.offsets.bytes(),
            data: c.data.bytes(),
            dict: c.dict.map(|(o, d, off, _)| (o.bytes(), d.bytes(), off)),
            offset: c.offset,
        };
        if !check {
            return Ok(v);
        }
        match (v.dict, c.dict) {
            (Some((doffsets, ddata, doff)), Some((_, _, _, dlen))) => {
                for j in doff..doff + dlen {
                    let (s, e) = (offset_at(doffsets, j), offset_at(doffsets, j + 1));
                    if s > e || e > ddata.len() {
                        return Err(format!("value {} of a dictionary is out of its data", j - doff));
                    }
                }
                for row in 0..n {
                    if v.is_valid(row) {
                        let k = index_at(v.offsets, v.offset + row);
                        if k < 0 || k as usize >= dlen {
                            return Err(format!("index {} of row {} is not in its dictionary", k, row));
                        }
                    }
                }
            }
            _ => {
                for row in 0..n {
                    let i = v.offset + row;
                    let (s, e) = (offset_at(v.offsets, i), offset_at(v.offsets, i + 1));
                    if v.is_valid(row) && (s > e || e > v.data.len()) {
                        return Err(format!("value {} of a column is out of its data", row));
                    }
                }
            }
        }
        Ok(v)
    }

    fn is_valid(&self, row: usize) -> bool {
        let i = self.offset + row;
        self.valid.map_or(true, |v| (v[i >> 3] >> (i & 7)) & 1 == 1)
    }

    /// The value of a valid row (bounds checked in `of`).
    fn value(&self, row: usize) -> &'a [u8] {
        let i = self.offset + row;
        match self.dict {
            None => &self.data[offset_at(self.offsets, i)..offset_at(self.offsets, i + 1)],
            Some((doffsets, ddata, doff)) => {
                let j = doff + index_at(self.offsets, i) as usize;
                &ddata[offset_at(doffsets, j)..offset_at(doffsets, j + 1)]
            }
        }
    }
}

/// The int32 offsets of `n` rows of `{prefix value,prefix value,...}` over the columns
/// where each is not null, measured a column at a time (a dictionary's values once).
fn fields_json_offsets(n: usize, cols: &[JsonCol], views: &[ColView]) -> Result<Vec<i32>, String> {
    let mut len: Vec<usize> = vec![2; n]; // the braces
    let mut cells: Vec<u32> = vec![0; n];
    for (c, v) in cols.iter().zip(views.iter()) {
        let quotes = if c.quote { 2 } else { 0 };
        let width = |text: &[u8]| if c.quote { escaped_len(text) } else { text.len() };
        let per_value: Option<Vec<usize>> = v.dict.map(|(doffsets, ddata, doff)| {
            let dlen = c.dict.map_or(0, |d| d.3);
            (doff..doff + dlen)
                .map(|j| width(&ddata[offset_at(doffsets, j)..offset_at(doffsets, j + 1)]))
                .collect()
        });
        for row in 0..n {
            if !v.is_valid(row) {
                continue;
            }
            let w = match &per_value {
                Some(per) => per[index_at(v.offsets, v.offset + row) as usize],
                None => width(v.value(row)),
            };
            len[row] += c.prefix.len() + quotes + w;
            cells[row] += 1;
        }
    }
    let mut offs: Vec<i32> = Vec::with_capacity(n + 1);
    let mut total: usize = 0;
    offs.push(0);
    for row in 0..n {
        total += len[row] + (cells[row].max(1) - 1) as usize; // the commas
        if total > i32::MAX as usize {
            return Err("the fields JSON passes 2 GiB".to_string());
        }
        offs.push(total as i32);
    }
    Ok(offs)
}

/// Write the rows `fields_json_offsets` measured into `out` (exactly their length).
fn fields_json_write(n: usize, cols: &[JsonCol], views: &[ColView], out: &mut [u8]) {
    let mut w = 0;
    for row in 0..n {
        out[w] = b'{';
        w += 1;
        let mut first = true;
        for (c, v) in cols.iter().zip(views.iter()) {
            if !v.is_valid(row) {
                continue;
            }
            if !first {
                out[w] = b',';
                w += 1;
            }
            first = false;
            out[w..w + c.prefix.len()].copy_from_slice(&c.prefix);
            w += c.prefix.len();
            let value = v.value(row);
            if c.quote {
                out[w] = b'"';
                w += 1;
                escape_into(value, out, &mut w);
                out[w] = b'"';
                w += 1;
            } else {
                out[w..w + value.len()].copy_from_slice(value);
                w += value.len();
            }
        }
        out[w] = b'}';
        w += 1;
    }
}

/// The fields JSON of `n` rows: ``cols`` is a list of ``(prefix, quote, validity or
/// None, offsets, data or None, offset, length, dictionary)`` per column, in order, each
/// an Arrow ``string`` array's buffers, or, with ``dictionary`` ``(offsets, data or None,
/// offset, length)`` of the values, a dictionary array's validity and int32 indices (in
/// place of the offsets; its data None). ``prefix`` goes before each value
/// (``"key":``), and a value is quoted and escaped when ``quote`` (else it is JSON text
/// already). ``alloc(size)`` gives the writable buffer the text is written into (e.g.
/// ``pyarrow.allocate_buffer``). Returns the int32 offsets (bytes) and that buffer: a
/// ``string`` array's.
#[pyfunction]
fn fields_json(py: Python, n: usize, cols: &PyList, alloc: &PyAny) -> PyResult<PyObject> {
    let mut held: Vec<PyBuffer<i8>> = Vec::new();
    let mut spec: Vec<JsonCol> = Vec::with_capacity(cols.len());
    let none = Raw { ptr: 0, len: 0 };
    for item in cols.iter() {
        let (prefix, quote, valid, offsets, data, offset, len, dict): (
            &[u8],
            bool,
            &PyAny,
            &PyAny,
            &PyAny,
            usize,
            usize,
            &PyAny,
        ) = item.extract()?;
        if len != n {
            return Err(PyValueError::new_err("a column's length is not the row count"));
        }
        let mut raw = |obj: &PyAny| -> PyResult<Option<Raw>> {
            if obj.is_none() {
                return Ok(None);
            }
            let b = PyBuffer::<i8>::get(obj)?;
            let r = Raw::of(&b);
            held.push(b);
            Ok(Some(r))
        };
        let valid = raw(valid)?;
        let offsets = raw(offsets)?.unwrap_or(none);
        let data = raw(data)?.unwrap_or(none);
        let dict = if dict.is_none() {
            None
        } else {
            let (doffsets, ddata, doff, dlen): (&PyAny, &PyAny, usize, usize) = dict.extract()?;
            let doffsets = raw(doffsets)?.unwrap_or(none);
            let ddata = raw(ddata)?.unwrap_or(none);
            if doffsets.len < (doff + dlen + 1) * 4 {
                return Err(PyValueError::new_err("a dictionary's offsets are shorter than it"));
            }
            Some((doffsets, ddata, doff, dlen))
        };
        let need = if dict.is_some() { (offset + n) * 4 } else { (offset + n + 1) * 4 };
        if offsets.len < need || valid.map_or(false, |v| v.len * 8 < offset + n) {
            return Err(PyValueError::new_err("a column's buffers are shorter than its rows"));
        }
        spec.push(JsonCol { prefix: prefix.to_vec(), quote, valid, offsets, data, offset, dict });
    }
    // measured first, then written straight into the bytes handed back: no growing
    // buffer and no copy of the text (the fields JSON is most of a finding's bytes)
    let offs = py.allow_threads(|| -> Result<Vec<i32>, String> {
        // SAFETY: `held` keeps every buffer alive (and read-only) until after the call
        let views = cols_views(&spec, n, true)?;
        fields_json_offsets(n, &spec, &views)
    }).map_err(PyValueError::new_err)?;
    let total = *offs.last().unwrap_or(&0) as usize;
    // the text goes where ``alloc`` says (Arrow's memory pool: freed pages go back to
    // the system as the rest of the findings' do, not kept by this process's heap)
    let data: &PyAny = alloc.call1((total,))?;
    let out = PyBuffer::<i8>::get(data)?;
    if out.readonly() || out.len_bytes() < total || !out.is_c_contiguous() {
        return Err(PyValueError::new_err("alloc gave no writable buffer of the length asked"));
    }
    let out_raw = Raw::of(&out);
    py.allow_threads(|| {
        if total == 0 {
            return; // no rows
        }
        let views = cols_views(&spec, n, false).expect("checked when measured");
        // SAFETY: `out` (held) is a writable buffer of at least `total` bytes, fresh from
        // `alloc` and not yet seen by anything else
        let buf = unsafe { std::slice::from_raw_parts_mut(out_raw.ptr as *mut u8, total) };
        fields_json_write(n, &spec, &views, buf);
    });
    drop(out);
    drop(held);
    let offs = unsafe { std::slice::from_raw_parts(offs.as_ptr() as *const u8, offs.len() * 4) };
    Ok((PyBytes::new(py, offs), data).into_py(py))
}

fn cols_views(spec: &[JsonCol], n: usize, check: bool) -> Result<Vec<ColView<'_>>, String> {
    spec.iter().map(|c| unsafe { ColView::of(c, n, check) }).collect()
}

#[pymodule]
fn _evtxflat(_py: Python, m: &PyModule) -> PyResult<()> {
    m.add_class::<Buffer>()?;
    m.add_function(wrap_pyfunction!(fields_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
