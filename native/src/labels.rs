//! What a person is called outside the identity table (reference:
//! `crm2stream/core/labels.py`, which says why): the anchor, masked unless raw labels
//! were asked for.

const HIDDEN: &str = "****";

/// `kind:value` with the value masked, character by character as the reference slices.
pub fn masked(identifier: &str) -> String {
    let (kind, value) = identifier.split_once(':').unwrap_or((identifier, ""));
    if value.is_ascii() {
        return masked_ascii(kind, value);
    }
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let text = |range: std::ops::Range<usize>| chars[range].iter().collect::<String>();
    let shown = match value.rfind('@') {
        _ if kind == "phone" && n >= 11 => format!("{}{HIDDEN}{}", text(0..n - 8), text(n - 4..n)),
        Some(at) if kind == "email" && at > 0 => {
            let first: String = chars.iter().take(1).collect();
            format!("{first}{HIDDEN}@{}", &value[at + 1..])
        }
        _ => {
            let keep = 2.min(n / 4);
            format!("{}{HIDDEN}{}", text(0..keep), text(n - keep..n))
        }
    };
    format!("{kind}:{shown}")
}

/// `masked` of an ASCII value (nearly every one), sliced by bytes: the same characters.
fn masked_ascii(kind: &str, value: &str) -> String {
    let n = value.len();
    let mut out = String::with_capacity(kind.len() + 1 + HIDDEN.len() + 16);
    out.push_str(kind);
    out.push(':');
    match value.rfind('@') {
        _ if kind == "phone" && n >= 11 => {
            out.push_str(&value[..n - 8]);
            out.push_str(HIDDEN);
            out.push_str(&value[n - 4..]);
        }
        Some(at) if kind == "email" && at > 0 => {
            out.push_str(&value[..1]);
            out.push_str(HIDDEN);
            out.push_str(&value[at..]);
        }
        _ => {
            let keep = 2.min(n / 4);
            out.push_str(&value[..keep]);
            out.push_str(HIDDEN);
            out.push_str(&value[n - keep..]);
        }
    }
    out
}

/// A person's label: its anchor, masked unless `raw`.
pub fn label(anchor: &str, raw: bool) -> String {
    if raw {
        anchor.to_string()
    } else {
        masked(anchor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_as_the_reference_masks_them() {
        for (identifier, want) in [
            ("phone:+8613800001111", "phone:+86138****1111"),
            ("phone:13800001111", "phone:138****1111"),
            ("phone:1234", "phone:1****4"),
            ("email:alice@example.com", "email:a****@example.com"),
            ("email:@x", "email:****"),
            ("wechat:fan00012", "wechat:fa****12"),
            ("qq:1", "qq:****"),
            ("weibo:中文名字很长的", "weibo:中****的"),
        ] {
            assert_eq!(masked(identifier), want, "{identifier}");
        }
    }
}
