//! How YAML 1.1 readers — kubectl first — resolve a plain (unquoted, untagged) scalar.
//!
//! kubectl, Helm, Argo CD and Flux all turn YAML into JSON with `sigs.k8s.io/yaml`, which reads
//! it with go-yaml v2, a YAML 1.1 reader; `portcullis check` reads YAML 1.2. [`kubectl`] is
//! go-yaml v2's `resolve` (go.yaml.in/yaml/v2 v2.4, `resolve.go`) as `sigs.k8s.io/yaml` v1.6
//! hands it to JSON. The plain scalars it reads differently from YAML 1.2's core schema, checked
//! against `sigs.k8s.io/yaml.YAMLToJSON` itself (the cases are the unit tests below):
//!
//! | written | kubectl (YAML 1.1) | YAML 1.2 |
//! |---|---|---|
//! | `y Y yes Yes YES on On ON` | boolean true | string |
//! | `n N no No NO off Off OFF` | boolean false | string |
//! | `0755`, `+010`, `-010` (leading zero) | octal: 493, 8, -8 | decimal: 755, 10, -10 |
//! | `08`, `09` | 8, 9 (octal fails, read as a float) | 8, 9 |
//! | `1_000`, `1_000.5`, `.5_0` (underscores) | 1000, 1000.5, 0.5 | string |
//! | `0b101`, `-0b101`, `0B101` (binary) | 5, -5, 5 | string |
//! | `-0x1F`, `+0x1F`, `0X1F` (signed or upper-case hex) | -31, 31, 31 | string |
//! | `0O755` (upper-case octal prefix) | 493 | string |
//!
//! The same in both, so never flagged: `true`/`false` in every case YAML 1.2 knows, null
//! (`~`, `null`, empty), `0x1F`, `0o755`, `.5`, `5.`, `1e3`, `.inf`, `.nan`. Mixed-case words
//! (`yEs`, `tRue`) are strings to both.
//!
//! Forms of the YAML 1.1 specification that kubectl does not implement, so that only other YAML
//! 1.1 readers (PyYAML, used by Ansible; Ruby's Psych) read them differently:
//! - base-60 numbers, `1:30` (90) and `1:30.5` (90.5): [`base60`];
//! - timestamps such as `2001-12-14`: not flagged, because go-yaml v2 keeps them as strings in
//!   untyped documents and PyYAML's dates go back to JSON as the same text.

/// What a reader makes of a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number (which may be integral: JSON does not tell them apart).
    Float(f64),
    /// The text itself.
    Text,
}

impl Reading {
    /// Whether two readings put the same JSON into the object (an integer and a float of the
    /// same value do).
    pub fn same_as(self, other: Reading) -> bool {
        match (self, other) {
            (Reading::Int(a), Reading::Float(b)) | (Reading::Float(b), Reading::Int(a)) => {
                a as f64 == b
            }
            (Reading::Float(a), Reading::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (a, b) => a == b,
        }
    }

    /// How the reading reads in a message, for the scalar written as `text`.
    pub fn describe(self, text: &str) -> String {
        match self {
            Reading::Null => "null".to_owned(),
            Reading::Bool(value) => format!("the boolean {value}"),
            Reading::Int(value) => format!("the integer {value}"),
            Reading::Float(value) if value.is_finite() => format!("the number {value}"),
            Reading::Float(value) => format!("{value}, which JSON cannot hold"),
            Reading::Text => format!("the string {text:?}"),
        }
    }
}

/// The first characters of every plain scalar that kubectl may read as something else than its
/// text (go-yaml v2's `resolveTable`): any other scalar is a string to every reader.
pub fn may_not_be_text(text: &str) -> bool {
    text.bytes()
        .next()
        .is_none_or(|first| b"yYnNtTfFoO~.+-0123456789".contains(&first))
}

/// How kubectl reads the plain scalar `text`.
pub fn kubectl(text: &str) -> Reading {
    if !may_not_be_text(text) {
        return Reading::Text;
    }
    if let Some(reading) = word(text) {
        return reading;
    }
    if text.starts_with('.') {
        // Go's ParseFloat, which takes underscores between digits.
        return digits_only_underscores(text)
            .filter(|plain| float_syntax(plain))
            .and_then(|plain| plain.parse().ok())
            .filter(|value: &f64| value.is_finite())
            .map_or(Reading::Text, Reading::Float);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return Reading::Text;
    }
    // A timestamp (`2001-12-14`) comes first in go-yaml, but none parses as a number and
    // kubectl keeps timestamps as strings, so it needs no branch here.
    let plain = text.replace('_', "");
    if let Some(value) = go_integer(&plain) {
        return Reading::Int(value);
    }
    if float_syntax(&plain)
        && let Ok(value) = plain.parse::<f64>()
        && value.is_finite()
    {
        return Reading::Float(value);
    }
    Reading::Text
}

/// How YAML 1.1 readers other than kubectl read a base-60 scalar, when it is one: the
/// specification's `int` (`[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`, `1:30` is 90) and `float`
/// (`[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`, `1:30.5` is 90.5), which go-yaml leaves out on
/// purpose.
pub fn base60(text: &str) -> Option<Reading> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let negative = text.starts_with('-');
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let mut parts = whole.split(':');
    let first = parts.next()?;
    let sixties: Vec<&str> = parts.collect();
    let lowest = if fraction.is_some() { '0' } else { '1' };
    let first_right = first.starts_with(|c: char| (lowest..='9').contains(&c))
        && first.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let sixties_right = !sixties.is_empty()
        && sixties.iter().all(|s| {
            (1..=2).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_digit())
                && s.parse::<u8>().is_ok_and(|n| n < 60)
        });
    let fraction_right =
        fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'));
    if !(first_right && sixties_right && fraction_right) {
        return None;
    }
    let mut value: i128 = first.replace('_', "").parse().ok()?;
    for sixty in &sixties {
        value = value.checked_mul(60)?.checked_add(sixty.parse().ok()?)?;
    }
    let value = if negative { -value } else { value };
    match fraction {
        None => Some(Reading::Int(value)),
        Some(f) => {
            let fraction: f64 = format!("0.{}", f.replace('_', "")).parse().ok()?;
            let sign = if negative { -1.0 } else { 1.0 };
            Some(Reading::Float(value as f64 + sign * fraction))
        }
    }
}

/// How YAML 1.2's core schema (the specification's section 10.3) reads the plain scalar
/// `text`: the reading every difference is stated against. (The loader is laxer: it also takes
/// `1_000` and `0b101` as numbers, which kubectl does too.)
pub fn yaml12(text: &str) -> Reading {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Reading::Null,
        "true" | "True" | "TRUE" => return Reading::Bool(true),
        "false" | "False" | "FALSE" => return Reading::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Reading::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Reading::Float(sign * f64::INFINITY);
    }
    let radix = |prefix: &str, radix: u32| {
        let digits = text.strip_prefix(prefix)?;
        let all = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
        all.then(|| i128::from_str_radix(digits, radix).ok())
            .flatten()
    };
    if let Some(value) = radix("0o", 8).or_else(|| radix("0x", 16)) {
        return Reading::Int(value);
    }
    if !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit())
        && let Ok(value) = text.parse::<i128>()
    {
        return Reading::Int(value);
    }
    if float_syntax(text)
        && let Ok(value) = text.parse::<f64>()
    {
        return Reading::Float(value);
    }
    Reading::Text
}

/// go-yaml v2's `resolveMap`: the words it reads as booleans, null and special floats.
fn word(text: &str) -> Option<Reading> {
    Some(match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Reading::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Reading::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Reading::Null,
        ".nan" | ".NaN" | ".NAN" => Reading::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Reading::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Reading::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`: a sign, then a `0x`, `0o`,
/// `0b` prefix (either case) or a leading `0` for octal.
fn go_integer(text: &str) -> Option<i128> {
    let (sign, body) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (0, text),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if sign < 0 { -magnitude } else { magnitude };
    let fits = i64::try_from(value).is_ok() || (sign == 0 && u64::try_from(value).is_ok());
    fits.then_some(value)
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn float_syntax(text: &str) -> bool {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let s = text.strip_prefix(['+', '-']).unwrap_or(text);
    let whole = digits(s);
    let mut rest = &s[whole..];
    if let Some(after_dot) = rest.strip_prefix('.') {
        let fraction = digits(after_dot);
        if whole == 0 && fraction == 0 {
            return false;
        }
        rest = &after_dot[fraction..];
    } else if whole == 0 {
        return false;
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let count = digits(exponent);
        return count > 0 && count == exponent.len();
    }
    rest.is_empty()
}

/// `text` without its underscores, when each stands between two digits (Go's rule for
/// ParseFloat); `None` when one does not.
fn digits_only_underscores(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let fine = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    fine.then(|| text.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case checked against `sigs.k8s.io/yaml.YAMLToJSON` (v1.6.0, go-yaml v2.4.3).
    #[test]
    fn kubectl_reads_plain_scalars_as_go_yaml_v2_does() {
        use Reading::*;
        let cases: &[(&str, Reading)] = &[
            ("y", Bool(true)),
            ("Y", Bool(true)),
            ("yes", Bool(true)),
            ("Yes", Bool(true)),
            ("YES", Bool(true)),
            ("on", Bool(true)),
            ("On", Bool(true)),
            ("ON", Bool(true)),
            ("true", Bool(true)),
            ("True", Bool(true)),
            ("n", Bool(false)),
            ("N", Bool(false)),
            ("no", Bool(false)),
            ("NO", Bool(false)),
            ("off", Bool(false)),
            ("OFF", Bool(false)),
            ("FALSE", Bool(false)),
            ("yEs", Text),
            ("oN", Text),
            ("tRue", Text),
            ("~", Null),
            ("null", Null),
            ("", Null),
            ("0755", Int(493)),
            ("0o755", Int(493)),
            ("0O755", Int(493)),
            ("0x1F", Int(31)),
            ("0X1F", Int(31)),
            ("-0x1F", Int(-31)),
            ("+0x1F", Int(31)),
            ("0b101", Int(5)),
            ("0B101", Int(5)),
            ("-0b101", Int(-5)),
            ("08", Float(8.0)),
            ("09", Float(9.0)),
            ("010", Int(8)),
            ("-010", Int(-8)),
            ("+010", Int(8)),
            ("007", Int(7)),
            ("0", Int(0)),
            ("-0", Int(0)),
            ("00", Int(0)),
            ("+12", Int(12)),
            ("1_000", Int(1000)),
            ("1__0", Int(10)),
            ("1_000.5", Float(1000.5)),
            (".5_0", Float(0.5)),
            ("_1", Text),
            ("1:30", Text),
            ("190:20:30.15", Text),
            ("-1:30", Text),
            (".5", Float(0.5)),
            ("5.", Float(5.0)),
            ("+.5", Float(0.5)),
            ("-.5", Float(-0.5)),
            ("1e3", Float(1000.0)),
            ("1E3", Float(1000.0)),
            ("1.0e+3", Float(1000.0)),
            ("9223372036854775808", Int(9_223_372_036_854_775_808)),
            ("18446744073709551616", Float(18_446_744_073_709_551_616.0)),
            ("2001-12-14", Text),
            ("2001-12-14T21:59:43.10Z", Text),
            ("0x", Text),
            ("0b", Text),
            ("0xg", Text),
            ("12e", Text),
            ("1,000", Text),
            ("0.1.2", Text),
            ("10s", Text),
            ("/users", Text),
        ];
        for &(text, expected) in cases {
            let read = kubectl(text);
            assert!(
                read.same_as(expected),
                "{text:?}: {read:?}, kubectl reads {expected:?}"
            );
        }
        assert!(matches!(kubectl(".inf"), Float(f) if f == f64::INFINITY));
        assert!(matches!(kubectl(".nan"), Float(f) if f.is_nan()));
    }

    #[test]
    fn yaml_1_2_reads_plain_scalars_by_its_core_schema() {
        use Reading::*;
        let cases: &[(&str, Reading)] = &[
            ("yes", Text),
            ("on", Text),
            ("n", Text),
            ("True", Bool(true)),
            ("FALSE", Bool(false)),
            ("~", Null),
            ("", Null),
            ("0755", Int(755)),
            ("010", Int(10)),
            ("-010", Int(-10)),
            ("+12", Int(12)),
            ("0o755", Int(493)),
            ("0O755", Text),
            ("0x1F", Int(31)),
            ("-0x1F", Text),
            ("0b101", Text),
            ("1_000", Text),
            ("1:30", Text),
            (".5", Float(0.5)),
            ("5.", Float(5.0)),
            ("-1e3", Float(-1000.0)),
            ("10s", Text),
        ];
        for &(text, expected) in cases {
            let read = yaml12(text);
            assert!(
                read.same_as(expected),
                "{text:?}: {read:?}, not {expected:?}"
            );
        }
        assert!(matches!(yaml12("-.inf"), Float(f) if f == f64::NEG_INFINITY));
    }

    #[test]
    fn base_60_is_read_by_yaml_1_1_but_not_by_kubectl() {
        assert_eq!(base60("1:30"), Some(Reading::Int(90)));
        assert_eq!(base60("-1:30"), Some(Reading::Int(-90)));
        assert_eq!(base60("190:20:30"), Some(Reading::Int(685_230)));
        assert_eq!(base60("1:30.5"), Some(Reading::Float(90.5)));
        assert_eq!(base60("-1:30.5"), Some(Reading::Float(-90.5)));
        assert_eq!(base60("01:30.5"), Some(Reading::Float(90.5)));
        assert_eq!(base60("1_0:30"), Some(Reading::Int(630)));
        for not_base60 in [
            "1:60", "01:30", "1:", ":30", "1:300", "12:30:x", "130", "a:30", "1.5", "_1:30",
        ] {
            assert_eq!(base60(not_base60), None, "{not_base60}");
        }
    }

    #[test]
    fn integers_and_floats_of_one_value_are_the_same_json() {
        assert!(Reading::Int(8).same_as(Reading::Float(8.0)));
        assert!(!Reading::Int(8).same_as(Reading::Int(10)));
        assert!(!Reading::Bool(true).same_as(Reading::Text));
        assert!(Reading::Float(f64::NAN).same_as(Reading::Float(f64::NAN)));
    }
}
