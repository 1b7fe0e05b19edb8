//! How answers are shown: aligned tables and `key: value` lines for people, or the
//! server's JSON as it came (`--output json`).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// A cell: strings bare, times (`*_at` in milliseconds) as UTC, lists joined.
fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) if key == "at" || key.ends_with("_at") => n.as_i64().map_or_else(|| n.to_string(), utc),
        Value::Array(a) => a.iter().map(|x| cell("", x)).collect::<Vec<_>>().join(","),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as RFC 3339, in UTC, to the second.
pub fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `key.sub` paths into an object.
fn field<'a>(row: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(row, |v, k| &v[k])
}

/// Rows under columns (`path` or `path=HEADER`), aligned.
pub fn table(rows: &[Value], columns: &[&str]) -> String {
    let cols: Vec<(&str, String)> = columns
        .iter()
        .map(|c| match c.split_once('=') {
            Some((p, h)) => (p, h.to_owned()),
            None => (*c, c.rsplit('.').next().unwrap_or(c).to_uppercase()),
        })
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|(p, _)| cell(p, field(r, p))).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, h))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let mut s = String::new();
        for (i, v) in values.iter().enumerate() {
            if i + 1 == values.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(cols.iter().map(|(_, h)| h.as_str()).collect());
    for r in &cells {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// One object as `key: value` lines, in the server's order.
pub fn record(v: &Value) -> String {
    match v.as_object() {
        Some(map) => {
            let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
            map.iter()
                .map(|(k, x)| format!("{k:<width$}  {}\n", cell(k, x)))
                .collect()
        }
        None => format!("{}\n", cell("", v)),
    }
}

/// The list in an answer: the answer itself, or the array under `key`.
pub fn rows<'a>(v: &'a Value, key: Option<&str>) -> &'a [Value] {
    let list = match key {
        Some(k) => &v[k],
        None => v,
    };
    list.as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_times_and_lists() {
        let rows = [
            json!({"name": "ci", "products": ["web", "db"], "created_at": 0, "last_used_at": null}),
            json!({"name": "deploy-bot", "products": null, "created_at": 86_400_000, "last_used_at": null}),
        ];
        let t = table(
            &rows,
            &["name", "products", "created_at=CREATED", "last_used_at=LAST USED"],
        );
        assert_eq!(
            t,
            "NAME        PRODUCTS  CREATED               LAST USED\n\
             ci          web,db    1970-01-01T00:00:00Z  -\n\
             deploy-bot  -         1970-01-02T00:00:00Z  -\n"
        );
    }
}
