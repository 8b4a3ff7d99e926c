//! The query protocol's input: `Action=...&Version=...&Param=...`, form-encoded in a POST
//! body or in the URL's query string.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

/// The `name=value` pairs of a form or query string, decoded (`+` is a space), in order;
/// names may repeat. A pair without `=` has an empty value.
pub fn pairs(form: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    form.split('&')
        .filter(|p| !p.is_empty())
        .map(move |p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
}

/// A query-protocol request's parameters, decoded. Later values of a repeated name win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Decodes `a=1&b=x+y` (`+` is a space in forms).
    pub fn parse(form: &str) -> Params {
        Params(pairs(form).collect())
    }

    /// The parameters of the URL's query and the form body together (the body wins).
    pub fn from_request(raw_query: &str, body: &[u8]) -> Params {
        let mut params = Params::parse(raw_query);
        params
            .0
            .extend(Params::parse(&String::from_utf8_lossy(body)).0);
        params
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms_and_queries() {
        let p = Params::from_request(
            "Action=A&X=1",
            b"Action=GetCallerIdentity&Version=2011-06-15&N=a+b%2Fc",
        );
        assert_eq!(p.action(), Some("GetCallerIdentity"));
        assert_eq!(p.get("Version"), Some("2011-06-15"));
        assert_eq!(p.get("N"), Some("a b/c"));
        assert_eq!(p.get("X"), Some("1"));
        assert_eq!(p.get("Y"), None);
    }
}
