//! How much faster would a typed, borrowed parse + serialise of the stored body be than
//! serde_json::Value? Measurement only (issue 13, eighth sitting): the load generator's stored
//! bodies, one file each, in the directory given. Keys the structs do not name are dropped, so
//! it first checks that every body comes out byte for byte as serde_json writes it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// A borrowed free-form value: what scrubbing and bounding would walk.
#[derive(Debug)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Val<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Val<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("json")
            }
            fn visit_unit<E>(self) -> Result<Val<'a>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E>(self) -> Result<Val<'a>, E> {
                Ok(Val::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Val<'a>, E> {
                Ok(Val::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'a>, E> {
                Ok(Val::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'a>, E> {
                Ok(Val::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Val<'a>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Val::Null, Val::Num))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val<'a>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Val::Arr(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val<'a>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<Key<'a>, Val<'a>>()? {
                    out.push((k.0, v));
                }
                Ok(Val::Obj(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

struct Key<'a>(Cow<'a, str>);
impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Num(n) => n.serialize(s),
            Val::Str(v) => s.serialize_str(v),
            Val::Arr(a) => {
                let mut q = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    q.serialize_element(v)?;
                }
                q.end()
            }
            Val::Obj(o) => {
                // Sorted, as the stored body is today (serde_json's BTreeMap order).
                let mut idx: Vec<&(Cow<str>, Val)> = o.iter().collect();
                idx.sort_by(|a, b| a.0.cmp(&b.0));
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in idx {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

type S<'a> = Cow<'a, str>;

#[derive(Deserialize, Serialize)]
struct Values<T> {
    values: Vec<T>,
}

#[derive(Deserialize, Serialize)]
struct Crumb<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    category: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    data: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    level: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    message: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    timestamp: Option<S<'a>>,
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<S<'a>>,
}

#[derive(Deserialize, Serialize)]
struct Frame<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    abs_path: Option<S<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    colno: Option<u64>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    context_line: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    filename: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    function: Option<S<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_app: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineno: Option<u64>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    module: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    post_context: Option<Vec<S<'a>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pre_context: Option<Vec<S<'a>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    vars: Option<Val<'a>>,
}

#[derive(Deserialize, Serialize)]
struct Stacktrace<'a> {
    #[serde(borrow)]
    frames: Vec<Frame<'a>>,
}

#[derive(Deserialize, Serialize)]
struct Exception<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    mechanism: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    module: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    stacktrace: Option<Stacktrace<'a>>,
    #[serde(borrow, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    value: Option<S<'a>>,
}

#[derive(Deserialize, Serialize)]
struct Event<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    breadcrumbs: Option<Values<Crumb<'a>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    contexts: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    environment: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    event_id: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    exception: Option<Values<Exception<'a>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    extra: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    level: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    logger: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    platform: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    received: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    release: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    request: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    sdk: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    server_name: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    tags: Option<BTreeMap<S<'a>, S<'a>>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    timestamp: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    transaction: Option<S<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    user: Option<Val<'a>>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    message: Option<Val<'a>>,
}

/// One walk over every key and string, as the scrubber's and the bound's walks do.
fn walk_value(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(a) => a.iter().map(walk_value).sum(),
        serde_json::Value::Object(o) => o.iter().map(|(k, v)| k.len() + walk_value(v)).sum(),
        _ => 0,
    }
}

fn walk_val(v: &Val) -> usize {
    match v {
        Val::Str(s) => s.len(),
        Val::Arr(a) => a.iter().map(walk_val).sum(),
        Val::Obj(o) => o.iter().map(|(k, v)| k.len() + walk_val(v)).sum(),
        _ => 0,
    }
}

fn opt(s: &Option<S>) -> usize {
    s.as_ref().map_or(0, |s| s.len())
}
fn optv(v: &Option<Val>) -> usize {
    v.as_ref().map_or(0, walk_val)
}

fn walk_event(e: &Event) -> usize {
    let mut n = opt(&e.environment)
        + opt(&e.event_id)
        + opt(&e.level)
        + opt(&e.logger)
        + opt(&e.platform)
        + opt(&e.received)
        + opt(&e.release)
        + opt(&e.server_name)
        + opt(&e.timestamp)
        + opt(&e.transaction)
        + optv(&e.contexts)
        + optv(&e.extra)
        + optv(&e.request)
        + optv(&e.sdk)
        + optv(&e.user)
        + optv(&e.message);
    if let Some(t) = &e.tags {
        n += t.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    }
    if let Some(b) = &e.breadcrumbs {
        for c in &b.values {
            n += opt(&c.category)
                + optv(&c.data)
                + opt(&c.level)
                + opt(&c.message)
                + opt(&c.timestamp)
                + opt(&c.kind);
        }
    }
    if let Some(x) = &e.exception {
        for ex in &x.values {
            n += optv(&ex.mechanism) + opt(&ex.module) + opt(&ex.kind) + opt(&ex.value);
            for f in ex.stacktrace.iter().flat_map(|s| &s.frames) {
                n += opt(&f.abs_path)
                    + opt(&f.context_line)
                    + opt(&f.filename)
                    + opt(&f.function)
                    + opt(&f.module)
                    + optv(&f.vars)
                    + f.pre_context
                        .iter()
                        .flatten()
                        .map(|s| s.len())
                        .sum::<usize>()
                    + f.post_context
                        .iter()
                        .flatten()
                        .map(|s| s.len())
                        .sum::<usize>();
            }
        }
    }
    n
}

fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mut bodies: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    bodies.sort();
    // Same bytes out? (typed output must equal the Value tree's, given sorted keys.)
    let mut same = 0;
    for b in &bodies {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        let t: Event = serde_json::from_str(b).unwrap();
        if serde_json::to_vec(&v).unwrap() == serde_json::to_vec(&t).unwrap() {
            same += 1;
        }
    }
    println!("identical output: {same} of {}", bodies.len());
    let mut out = Vec::with_capacity(64 * 1024);
    for round in 0..5 {
        let t = Instant::now();
        for b in &bodies {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            out.clear();
            serde_json::to_writer(&mut out, &v).unwrap();
            std::hint::black_box(&out);
        }
        let whole_value = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let t = Instant::now();
        for b in &bodies {
            let v: Event = serde_json::from_str(b).unwrap();
            out.clear();
            serde_json::to_writer(&mut out, &v).unwrap();
            std::hint::black_box(&out);
        }
        let whole_typed = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        println!("round {round}: parse + serialise + drop, one event at a time: Value {whole_value:.1} typed {whole_typed:.1} µs/event");
    }
    {
        let values: Vec<serde_json::Value> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        let typed: Vec<Event> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        for round in 0..3 {
            let t = Instant::now();
            let a: usize = values.iter().map(walk_value).sum();
            let walk_v = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
            let t = Instant::now();
            let b: usize = typed.iter().map(walk_event).sum();
            let walk_t = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
            println!("round {round}: one walk over every key and string: Value {walk_v:.2} ({a} bytes) typed {walk_t:.2} ({b} bytes) µs/event");
        }
    }
    for round in 0..3 {
        let t = Instant::now();
        let mut n = 0usize;
        for b in &bodies {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            n += matches!(v, serde_json::Value::Object(_)) as usize;
            std::hint::black_box(&v);
        }
        let parse_value = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let t = Instant::now();
        for b in &bodies {
            let v: Event = serde_json::from_str(b).unwrap();
            std::hint::black_box(&v);
        }
        let parse_typed = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let values: Vec<serde_json::Value> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        let typed: Vec<Event> = bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        let t = Instant::now();
        for v in &values {
            out.clear();
            serde_json::to_writer(&mut out, v).unwrap();
            std::hint::black_box(&out);
        }
        let ser_value = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let t = Instant::now();
        for v in &typed {
            out.clear();
            serde_json::to_writer(&mut out, v).unwrap();
            std::hint::black_box(&out);
        }
        let ser_typed = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let t = Instant::now();
        drop(values);
        let drop_value = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        let t = Instant::now();
        drop(typed);
        let drop_typed = t.elapsed().as_secs_f64() * 1e6 / bodies.len() as f64;
        println!("round {round} ({n}): parse Value {parse_value:.1} typed {parse_typed:.1} | serialise Value {ser_value:.1} typed {ser_typed:.1} | drop Value {drop_value:.1} typed {drop_typed:.1} µs/event");
    }
}
