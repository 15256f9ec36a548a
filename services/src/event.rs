//! The one event type of the lab: a driver location update.
//!
//! Decoding is strict. Every way a request body can be wrong maps to an
//! [`InputError`] that carries the HTTP status to answer with and a message that
//! names the problem; nothing that fails here ever reaches the database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest request body accepted, in bytes. A location update is ~150 bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// Longest driver id accepted, in characters.
pub const MAX_DRIVER_ID_CHARS: usize = 64;

/// A driver location update, as stored and as carried on the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationEvent {
    /// Unique id chosen by the client; the database keeps one row per id.
    pub event_id: Uuid,
    /// The driver, 1–64 printable characters.
    pub driver_id: String,
    /// Latitude in degrees, -90 to 90.
    pub lat: f64,
    /// Longitude in degrees, -180 to 180.
    pub lng: f64,
    /// When the client sent the update (RFC 3339).
    pub sent_at: DateTime<Utc>,
}

/// The original proof of concept's body: `{driverId, lat, lng}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LegacyBody {
    driver_id: String,
    lat: f64,
    lng: f64,
}

/// Which body shape a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyShape {
    /// [`LocationEvent`] with all five fields.
    Event,
    /// The original PoC's `{driverId, lat, lng}`; id and send time are assigned on receipt.
    Legacy,
}

/// Why a request was refused, with the status code to answer it with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("content type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body is empty; expected a JSON object")]
    Empty,
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("{field} is out of range: {value} is not within [{min}, {max}]")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("driver_id must be 1 to {MAX_DRIVER_ID_CHARS} printable characters, got {0:?}")]
    BadDriverId(String),
    #[error("sent_at must be between {EARLIEST} and {LATEST}, got {0}")]
    BadSentAt(String),
    #[error("the body did not arrive within {0} s")]
    SlowBody(u64),
}

/// The earliest `sent_at` accepted.
pub const EARLIEST: &str = "2000-01-01T00:00:00Z";
/// The latest `sent_at` accepted.
pub const LATEST: &str = "2100-01-01T00:00:00Z";

impl InputError {
    /// The HTTP status a service answers with.
    pub fn status(&self) -> u16 {
        match self {
            InputError::UnsupportedMediaType(_) => 415,
            InputError::TooLarge => 413,
            InputError::Empty | InputError::Malformed(_) => 400,
            InputError::Invalid(_)
            | InputError::OutOfRange { .. }
            | InputError::BadDriverId(_)
            | InputError::BadSentAt(_) => 422,
            InputError::SlowBody(_) => 408,
        }
    }

    /// A short machine-readable code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::UnsupportedMediaType(_) => "unsupported_media_type",
            InputError::TooLarge => "body_too_large",
            InputError::Empty => "empty_body",
            InputError::Malformed(_) => "malformed_json",
            InputError::Invalid(_) => "invalid_event",
            InputError::OutOfRange { .. } => "out_of_range",
            InputError::BadDriverId(_) => "invalid_driver_id",
            InputError::BadSentAt(_) => "invalid_sent_at",
            InputError::SlowBody(_) => "body_timeout",
        }
    }
}

/// Checks a `Content-Type` header value: `application/json`, parameters allowed.
pub fn check_content_type(value: Option<&str>) -> Result<(), InputError> {
    let value = value.unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(InputError::UnsupportedMediaType(value.to_string()))
    }
}

/// Decodes and validates a request body. `now` and `new_id` fill in what a
/// legacy body lacks.
pub fn decode(
    body: &[u8],
    shape: BodyShape,
    now: impl FnOnce() -> DateTime<Utc>,
) -> Result<LocationEvent, InputError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(InputError::TooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::Empty);
    }
    let event = match shape {
        BodyShape::Event => serde_json::from_slice::<LocationEvent>(body).map_err(json_error)?,
        BodyShape::Legacy => {
            let legacy = serde_json::from_slice::<LegacyBody>(body).map_err(json_error)?;
            LocationEvent {
                event_id: Uuid::new_v4(),
                driver_id: legacy.driver_id,
                lat: legacy.lat,
                lng: legacy.lng,
                sent_at: now(),
            }
        }
    };
    event.validate()?;
    Ok(event)
}

fn json_error(error: serde_json::Error) -> InputError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => InputError::Invalid(error.to_string()),
        Category::Syntax | Category::Eof | Category::Io => InputError::Malformed(error.to_string()),
    }
}

impl LocationEvent {
    /// Checks the ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), InputError> {
        range("lat", self.lat, -90.0, 90.0)?;
        range("lng", self.lng, -180.0, 180.0)?;
        let chars = self.driver_id.chars().count();
        if chars == 0
            || chars > MAX_DRIVER_ID_CHARS
            || self.driver_id.chars().any(|c| c.is_control())
            || self.driver_id.trim().is_empty()
        {
            return Err(InputError::BadDriverId(self.driver_id.clone()));
        }
        let bound = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc));
        if let (Ok(earliest), Ok(latest)) = (bound(EARLIEST), bound(LATEST))
            && !(earliest..latest).contains(&self.sent_at)
        {
            return Err(InputError::BadSentAt(self.sent_at.to_rfc3339()));
        }
        Ok(())
    }

    /// The JSON form carried on the topic.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a location event always serialises")
    }
}

fn range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), InputError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(InputError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const GOOD: &str = r#"{"event_id":"7f0c2a34-3d5e-4b43-9b1e-0a8f6c1d2e3f","driver_id":"driver_7","lat":37.78,"lng":-122.41,"sent_at":"2026-01-01T00:00:00.123Z"}"#;

    #[test]
    fn a_send_time_outside_this_century_is_refused() {
        for year in ["0000", "1999", "2100", "9999"] {
            let body = GOOD.replace("2026", year);
            let error = decode(body.as_bytes(), BodyShape::Event, now).unwrap_err();
            assert!(matches!(error, InputError::BadSentAt(_)), "{year}: {error}");
            assert_eq!(error.status(), 422);
        }
        assert!(decode(GOOD.as_bytes(), BodyShape::Event, now).is_ok());
    }

    #[test]
    fn a_full_event_round_trips() {
        let event = decode(GOOD.as_bytes(), BodyShape::Event, now).unwrap();
        assert_eq!(event.driver_id, "driver_7");
        let again = decode(&event.to_json(), BodyShape::Event, now).unwrap();
        assert_eq!(again, event);
    }

    #[test]
    fn a_legacy_body_gets_an_id_and_a_time() {
        let body = br#"{"driverId":"driver_1","lat":1.5,"lng":2.5}"#;
        let a = decode(body, BodyShape::Legacy, now).unwrap();
        let b = decode(body, BodyShape::Legacy, now).unwrap();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.sent_at, now());
        assert_eq!((a.lat, a.lng), (1.5, 2.5));
    }

    #[test]
    fn each_problem_has_its_status() {
        let cases: &[(&str, BodyShape, u16, &str)] = &[
            ("", BodyShape::Event, 400, "empty_body"),
            ("{", BodyShape::Event, 400, "malformed_json"),
            ("[]", BodyShape::Event, 422, "invalid_event"),
            (
                r#"{"driverId":"d","lat":1,"lng":1}"#,
                BodyShape::Event,
                422,
                "invalid_event",
            ),
            (
                r#"{"driverId":"d","lat":91,"lng":1}"#,
                BodyShape::Legacy,
                422,
                "out_of_range",
            ),
            (
                r#"{"driverId":"d","lat":1,"lng":-181}"#,
                BodyShape::Legacy,
                422,
                "out_of_range",
            ),
            (
                r#"{"driverId":"","lat":1,"lng":1}"#,
                BodyShape::Legacy,
                422,
                "invalid_driver_id",
            ),
            (
                r#"{"driverId":"a\nb","lat":1,"lng":1}"#,
                BodyShape::Legacy,
                422,
                "invalid_driver_id",
            ),
            (
                r#"{"driverId":"d","lat":"1","lng":1}"#,
                BodyShape::Legacy,
                422,
                "invalid_event",
            ),
            (
                r#"{"driverId":"d","lat":1,"lng":1,"x":0}"#,
                BodyShape::Legacy,
                422,
                "invalid_event",
            ),
        ];
        for (body, shape, status, code) in cases {
            let error = decode(body.as_bytes(), *shape, now).unwrap_err();
            assert_eq!((error.status(), error.code()), (*status, *code), "{body}");
        }
        let long = format!(r#"{{"driverId":"{}","lat":1,"lng":1}}"#, "x".repeat(65));
        assert_eq!(
            decode(long.as_bytes(), BodyShape::Legacy, now)
                .unwrap_err()
                .code(),
            "invalid_driver_id"
        );
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            decode(&huge, BodyShape::Event, now).unwrap_err().status(),
            413
        );
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert_eq!(
            check_content_type(Some("text/plain")).unwrap_err().status(),
            415
        );
        assert_eq!(check_content_type(None).unwrap_err().status(), 415);
    }
}
