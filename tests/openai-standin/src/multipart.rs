//! A strict reader of `multipart/form-data` (RFC 7578) bodies, enough for the realtime
//! calls endpoint: text fields with a `Content-Disposition: form-data; name=…` header,
//! parts separated by CRLF and the boundary. Strict on purpose: the relay under test must
//! produce a body that OpenAI's own parser accepts.

use serde::Serialize;

/// One field of a `multipart/form-data` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FormField {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename` of its `Content-Disposition`, when it has one.
    pub filename: Option<String>,
    /// Its own `Content-Type` header, when it has one.
    pub content_type: Option<String>,
    /// Its content, as text.
    pub value: String,
}

/// The `boundary` parameter of a `multipart/form-data` content type, or `None` when the
/// content type is something else or names no boundary.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let essence = parts.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|part| {
        let (key, value) = part.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Reads every field of `body`, delimited by `boundary`; the error says what is wrong.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<FormField>, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut close = b"\r\n".to_vec();
    close.extend_from_slice(&delimiter);

    // A preamble before the first delimiter is allowed by RFC 2046 and ignored.
    let mut at = if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        find(body, &close, 0).ok_or("no boundary delimiter in the body")? + close.len()
    };
    let mut fields = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return if fields.is_empty() {
                Err("the multipart body has no parts".into())
            } else {
                Ok(fields)
            };
        }
        if !rest.starts_with(b"\r\n") {
            return Err("a boundary delimiter is not followed by CRLF".into());
        }
        at += 2;
        let headers_end = find(body, b"\r\n\r\n", at).ok_or("a part's headers do not end")?;
        let headers = std::str::from_utf8(&body[at..headers_end])
            .map_err(|_| "a part's headers are not UTF-8")?;
        let content_start = headers_end + 4;
        let content_end =
            find(body, &close, content_start).ok_or("a part is not closed by the boundary")?;
        let value = String::from_utf8(body[content_start..content_end].to_vec())
            .map_err(|_| "a part's content is not UTF-8 text")?;
        fields.push(field_from_headers(headers, value)?);
        at = content_end + close.len();
    }
}

fn field_from_headers(headers: &str, value: String) -> Result<FormField, String> {
    let mut disposition = None;
    let mut content_type = None;
    for line in headers.split("\r\n") {
        let (name, header_value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed part header line {line:?}"))?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(header_value.trim());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(header_value.trim().to_owned());
        }
    }
    let disposition = disposition.ok_or("a part has no Content-Disposition header")?;
    let mut params = disposition.split(';').map(str::trim);
    if !params
        .next()
        .is_some_and(|kind| kind.eq_ignore_ascii_case("form-data"))
    {
        return Err("a part's Content-Disposition is not form-data".into());
    }
    let mut name = None;
    let mut filename = None;
    for param in params {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let unquoted = raw.trim().trim_matches('"').to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(unquoted),
            "filename" => filename = Some(unquoted),
            _ => {}
        }
    }
    let name = name
        .filter(|name| !name.is_empty())
        .ok_or("a part's Content-Disposition has no name")?;
    Ok(FormField {
        name,
        filename,
        content_type,
        value,
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| position + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"sdp\"\r\n\
        \r\n\
        v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n\
        \r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"session\"\r\n\
        Content-Type: application/json\r\n\
        \r\n\
        {\"type\":\"realtime\"}\r\n\
        --XyZ--\r\n";

    #[test]
    fn boundary_is_read_quoted_or_bare() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json; boundary=abc"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn fields_keep_their_content_including_inner_crlf() {
        let fields = parse(BODY.as_bytes(), "XyZ").unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].name, "sdp");
        assert_eq!(fields[0].value, "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n");
        assert_eq!(fields[1].name, "session");
        assert_eq!(fields[1].content_type.as_deref(), Some("application/json"));
        assert_eq!(fields[1].value, "{\"type\":\"realtime\"}");
    }

    #[test]
    fn filename_is_kept() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"sdp\"; filename=\"offer.sdp\"\r\n\r\nv=0\r\n--b--";
        let fields = parse(body.as_bytes(), "b").unwrap();
        assert_eq!(fields[0].filename.as_deref(), Some("offer.sdp"));
        assert_eq!(fields[0].value, "v=0");
    }

    #[test]
    fn bare_lf_line_endings_are_refused() {
        let body = BODY.replace("\r\n", "\n");
        assert!(parse(body.as_bytes(), "XyZ").is_err());
    }

    #[test]
    fn missing_closing_delimiter_is_refused() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0";
        assert!(parse(body.as_bytes(), "b").is_err());
    }

    #[test]
    fn wrong_boundary_is_refused() {
        assert!(parse(BODY.as_bytes(), "other").is_err());
    }

    #[test]
    fn part_without_name_is_refused() {
        let body = "--b\r\nContent-Disposition: form-data\r\n\r\nv=0\r\n--b--";
        assert!(parse(body.as_bytes(), "b").is_err());
    }

    #[test]
    fn empty_multipart_is_refused() {
        assert!(parse(b"--b--\r\n", "b").is_err());
    }
}
