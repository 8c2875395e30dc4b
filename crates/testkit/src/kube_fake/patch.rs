//! JSON patch (RFC 6902: add, remove, replace, test, as kube's finalizer helper sends them) and
//! JSON merge patch (RFC 7386; strategic merge patches are treated as merge patches).

use serde_json::Value;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer {pointer:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent<'a>(doc: &'a mut Value, toks: &[String], pointer: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {pointer:?}"))?;
    }
    Ok(cur)
}

/// Apply `ops` to `doc`; an error says which operation failed.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("the JSON patch is not a list of operations")?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let toks = tokens(path)?;
        let Some((last, init)) = toks.split_last() else {
            match op["op"].as_str() {
                Some("replace" | "add") => *doc = op["value"].clone(),
                Some("test") if *doc == op["value"] => {}
                _ => return Err(format!("unsupported operation at the root: {op}")),
            }
            continue;
        };
        let target = parent(doc, init, path)?;
        match op["op"].as_str() {
            Some("add") => match target {
                Value::Object(m) => drop(m.insert(last.clone(), op["value"].clone())),
                Value::Array(a) if last == "-" => a.push(op["value"].clone()),
                Value::Array(a) => match last.parse::<usize>() {
                    Ok(i) if i <= a.len() => a.insert(i, op["value"].clone()),
                    _ => return Err(format!("add operation does not apply: doc is missing path: {path:?}")),
                },
                _ => return Err(format!("add operation does not apply: doc is missing path: {path:?}")),
            },
            Some("remove") => {
                let removed = match target {
                    Value::Object(m) => m.remove(last).is_some(),
                    Value::Array(a) => match last.parse::<usize>() {
                        Ok(i) if i < a.len() => {
                            a.remove(i);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(format!("remove operation does not apply: doc is missing path: {path:?}"));
                }
            }
            Some("replace") => {
                let slot = match target {
                    Value::Object(m) => m.get_mut(last),
                    Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                    _ => None,
                };
                match slot {
                    Some(s) => *s = op["value"].clone(),
                    None => return Err(format!("replace operation does not apply: doc is missing key: {path:?}")),
                }
            }
            Some("test") => {
                let found = match &*target {
                    Value::Object(m) => m.get(last).cloned(),
                    Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i)).cloned(),
                    _ => None,
                };
                // A missing member tests equal to null.
                if found.unwrap_or(Value::Null) != op["value"] {
                    return Err(format!("testing value {path:?} failed: test failed"));
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// RFC 7386: objects merge, `null` deletes, anything else replaces.
pub fn merge_patch(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Default::default());
    }
    if let Value::Object(d) = doc {
        for (k, v) in p {
            if v.is_null() {
                d.remove(k);
            } else {
                merge_patch(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
