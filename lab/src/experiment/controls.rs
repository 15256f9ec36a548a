//! `control`: how many control repetitions run beside the faulted ones.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many control repetitions (the same load, no fault) run, interleaved
/// with the faulted ones: `control = true` is one, `control = 3` three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Controls(pub u32);

impl Serialize for Controls {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Controls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Count(u32),
        }
        Ok(Self(match Written::deserialize(deserializer)? {
            Written::Flag(on) => u32::from(on),
            Written::Count(n) => n,
        }))
    }
}

impl JsonSchema for Controls {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Controls".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`true` for one control repetition, or how many.",
            "anyOf": [
                { "type": "boolean" },
                { "type": "integer", "format": "uint32", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Scenario {
        control: Controls,
    }

    #[test]
    fn a_flag_is_one_control_and_a_count_is_that_many() {
        let read = |text: &str| toml::from_str::<Scenario>(text).map(|s| s.control.0);
        assert_eq!(read("control = true").unwrap(), 1);
        assert_eq!(read("control = false").unwrap(), 0);
        assert_eq!(read("control = 3").unwrap(), 3);
        assert!(read("control = \"yes\"").is_err());
        assert!(read("control = -1").is_err());
    }
}
