//! The Functions host's side of a call: the invocation request it sends and the reply it expects.
//!
//! The host posts `{"Data": {"eventGridEvent": EVENT}, "Metadata": {…}}` and reads back
//! `{"Outputs": {}, "Logs": […], "ReturnValue": null}`. Only the event is used; the metadata repeats its `data`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The name of the trigger binding in `RecordingEvent/function.json`; the host keys the event by it.
pub const EVENT_BINDING: &str = "eventGridEvent";

/// Why an invocation body holds no event we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    #[error("the invocation body is not a JSON object with a Data object: {0}")]
    NotAnInvocation(String),
    #[error("the invocation's Data has no {EVENT_BINDING} binding")]
    NoEvent,
    #[error("the {EVENT_BINDING} binding is neither a JSON object nor a string holding one")]
    EventNotAnObject,
}

#[derive(Deserialize)]
struct Invocation<'a> {
    #[serde(rename = "Data", borrow)]
    data: InvocationData<'a>,
}

#[derive(Deserialize)]
struct InvocationData<'a> {
    #[serde(rename = "eventGridEvent", borrow)]
    event: Option<&'a RawValue>,
}

/// Returns the event's JSON text, exactly as the host sent it, without parsing the event itself.
pub fn event_json(body: &[u8]) -> Result<Cow<'_, str>, InvocationError> {
    let invocation: Invocation<'_> =
        serde_json::from_slice(body).map_err(|e| InvocationError::NotAnInvocation(e.to_string()))?;
    let event = invocation.data.event.ok_or(InvocationError::NoEvent)?;
    unwrap_event(event).ok_or(InvocationError::EventNotAnObject)
}

/// What to keep of a body that holds no usable event: its `Data`, without the host's per-delivery `Metadata`
/// (a fresh `RandGuid` and `UtcNow` each time), so that a redelivery lands on the same quarantine entry; or the whole
/// body when it has no `Data`.
pub fn quarantine_payload(body: &[u8]) -> &[u8] {
    #[derive(Deserialize)]
    struct DataOnly<'a> {
        #[serde(rename = "Data", borrow)]
        data: &'a RawValue,
    }
    match serde_json::from_slice::<DataOnly<'_>>(body) {
        Ok(invocation) => invocation.data.get().as_bytes(),
        Err(_) => body,
    }
}

/// The host passes an event object through, but turns other values into a JSON string holding the JSON; dead-letter
/// tools do the same. Returns the object's text in either case, `None` for anything else.
pub fn unwrap_event(event: &RawValue) -> Option<Cow<'_, str>> {
    let text = event.get();
    match text.as_bytes().first() {
        Some(b'{') => Some(Cow::Borrowed(text)),
        Some(b'"') => {
            let inner: String = serde_json::from_str(text).ok()?;
            inner.trim_start().starts_with('{').then_some(Cow::Owned(inner))
        }
        _ => None,
    }
}

/// The reply the host expects from a custom handler; `Logs` lines appear in the function's invocation log.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct InvocationReply {
    #[serde(rename = "Outputs")]
    pub outputs: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<serde_json::Value>,
}

impl InvocationReply {
    pub fn with_log(line: impl Into<String>) -> Self {
        Self {
            outputs: serde_json::Map::new(),
            logs: vec![line.into()],
            return_value: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"e1","eventType":"T","data":{"a":1}}"#;

    fn body(event: &str) -> String {
        format!(
            r#"{{"Data":{{"eventGridEvent":{event}}},"Metadata":{{"data":{{"a":1}},"sys":{{"MethodName":"RecordingEvent","UtcNow":"2026-01-01T00:00:00Z","RandGuid":"x"}}}}}}"#
        )
    }

    #[test]
    fn event_object_is_returned_verbatim() {
        let body = body(EVENT);
        assert_eq!(event_json(body.as_bytes()).unwrap(), EVENT);
    }

    #[test]
    fn event_given_as_a_string_is_unwrapped() {
        let quoted = serde_json::to_string(EVENT).unwrap();
        let body = body(&quoted);
        assert_eq!(event_json(body.as_bytes()).unwrap(), EVENT);
    }

    #[test]
    fn bodies_without_an_event_are_refused() {
        assert!(matches!(
            event_json(b"not json"),
            Err(InvocationError::NotAnInvocation(_))
        ));
        assert!(matches!(event_json(b"{}"), Err(InvocationError::NotAnInvocation(_))));
        assert!(matches!(
            event_json(br#"{"data":{}}"#),
            Err(InvocationError::NotAnInvocation(_))
        ));
        assert_eq!(event_json(br#"{"Data":{}}"#), Err(InvocationError::NoEvent));
        assert_eq!(event_json(br#"{"Data":{"other":{}}}"#), Err(InvocationError::NoEvent));
        assert_eq!(
            event_json(br#"{"Data":{"eventGridEvent":null}}"#),
            Err(InvocationError::NoEvent)
        );
        let invalid_utf8 = b"{\"Data\":{\"eventGridEvent\":{\"id\":\"\xff\"}}}";
        assert!(matches!(
            event_json(invalid_utf8),
            Err(InvocationError::NotAnInvocation(_))
        ));
    }

    #[test]
    fn non_object_events_are_refused() {
        for event in ["[1]", "42", r#""not json""#, r#""[1]""#] {
            let body = body(event);
            assert_eq!(
                event_json(body.as_bytes()),
                Err(InvocationError::EventNotAnObject),
                "{event}"
            );
        }
    }

    #[test]
    fn quarantine_keeps_the_data_without_the_hosts_metadata() {
        let a = br#"{"Data":{"other":{"x":1}},"Metadata":{"sys":{"RandGuid":"1"}}}"#;
        let b = br#"{"Data":{"other":{"x":1}},"Metadata":{"sys":{"RandGuid":"2"}}}"#;
        assert_eq!(quarantine_payload(a), br#"{"other":{"x":1}}"#);
        assert_eq!(quarantine_payload(a), quarantine_payload(b));
        assert_eq!(quarantine_payload(b"garbage"), b"garbage");
    }

    #[test]
    fn reply_has_the_host_field_names() {
        let reply = serde_json::to_value(InvocationReply::with_log("done")).unwrap();
        assert_eq!(
            reply,
            serde_json::json!({"Outputs": {}, "Logs": ["done"], "ReturnValue": null})
        );
    }
}
