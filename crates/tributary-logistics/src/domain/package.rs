//! Packages and the values a client may send for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ValidationError;

/// Longest title / material, in characters.
pub const MAX_TEXT_CHARS: usize = 32;

/// The id of a stored package: 1..=i64::MAX (the database's bigserial range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackageId(i64);

impl PackageId {
    /// Parses a client-supplied id. 0 is invalid; ids above `i64::MAX` can
    /// never exist, so they are reported as not found by the caller
    /// (`Ok(None)`).
    pub fn parse(raw: u64) -> Result<Option<Self>, ValidationError> {
        if raw == 0 {
            return Err(ValidationError::new("id", "must be greater than 0"));
        }
        Ok(i64::try_from(raw).ok().map(PackageId))
    }

    /// From a database row.
    pub(crate) fn from_db(v: i64) -> Self {
        PackageId(v)
    }

    /// The database value.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The API value.
    pub fn as_u64(self) -> u64 {
        u64::try_from(self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for PackageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn text(field: &'static str, raw: String) -> Result<String, ValidationError> {
    let n = raw.chars().count();
    if n == 0 || n > MAX_TEXT_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be 1..{MAX_TEXT_CHARS} characters, got {n}"),
        ));
    }
    Ok(raw)
}

/// A package title: 1..=32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Parses a client value.
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        text("title", raw).map(Title)
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A package material: 1..=32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material(String);

impl Material {
    /// Parses a client value.
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        text("material", raw).map(Material)
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maximum volume in cm³: a finite number greater than 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxVolume(f32);

impl MaxVolume {
    /// Parses a client value.
    pub fn parse(raw: f32) -> Result<Self, ValidationError> {
        if raw.is_finite() && raw > 0.0 {
            Ok(MaxVolume(raw))
        } else {
            Err(ValidationError::new(
                "maximum_volume",
                format!("must be a finite number greater than 0, got {raw}"),
            ))
        }
    }
    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPackage {
    /// Title.
    pub title: Title,
    /// Material.
    pub material: Material,
    /// Maximum volume.
    pub maximum_volume: MaxVolume,
    /// Reusable or not.
    pub reusable: bool,
}

impl NewPackage {
    /// Validates the fields in API order; the first invalid one is reported.
    pub fn parse(
        title: String,
        material: String,
        maximum_volume: f32,
        reusable: bool,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            title: Title::parse(title)?,
            material: Material::parse(material)?,
            maximum_volume: MaxVolume::parse(maximum_volume)?,
            reusable,
        })
    }
}

/// A validated update: the fields to change. Never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageUpdate {
    /// New title.
    pub title: Option<Title>,
    /// New material.
    pub material: Option<Material>,
    /// New maximum volume.
    pub maximum_volume: Option<MaxVolume>,
    /// New reusable flag.
    pub reusable: Option<bool>,
}

impl PackageUpdate {
    /// Validates the fields that are set. `Ok(None)` when none is set (the
    /// caller answers "no changes specified").
    pub fn parse(
        title: Option<String>,
        material: Option<String>,
        maximum_volume: Option<f32>,
        reusable: Option<bool>,
    ) -> Result<Option<Self>, ValidationError> {
        let update = Self {
            title: title.map(Title::parse).transpose()?,
            material: material.map(Material::parse).transpose()?,
            maximum_volume: maximum_volume.map(MaxVolume::parse).transpose()?,
            reusable,
        };
        let empty = update.title.is_none()
            && update.material.is_none()
            && update.maximum_volume.is_none()
            && update.reusable.is_none();
        Ok((!empty).then_some(update))
    }
}

/// A stored package. Also the JSON payload of its outbox events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// Id.
    pub id: PackageId,
    /// Title.
    pub title: String,
    /// Material.
    pub material: String,
    /// Maximum volume, cm³.
    pub maximum_volume: f32,
    /// Reusable or not.
    pub reusable: bool,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// When it was last updated, if ever.
    pub updated: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the length rules count characters (not bytes) and name the field.
    #[test]
    fn text_rules() {
        assert!(Title::parse("a".into()).is_ok());
        assert!(Title::parse("я".repeat(32)).is_ok());
        let e = Title::parse("я".repeat(33)).expect_err("33 chars");
        assert_eq!(e.field, "title");
        assert_eq!(
            Material::parse(String::new()).expect_err("empty").field,
            "material"
        );
    }

    // Proves volume must be finite and positive, and id 0 is invalid while huge ids are "absent".
    #[test]
    fn numbers() {
        assert!(MaxVolume::parse(0.5).is_ok());
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(
                MaxVolume::parse(bad).expect_err("bad").field,
                "maximum_volume"
            );
        }
        assert_eq!(PackageId::parse(0).expect_err("zero").field, "id");
        assert_eq!(PackageId::parse(u64::MAX).expect("parses"), None);
        assert_eq!(
            PackageId::parse(7).expect("parses").map(PackageId::get),
            Some(7)
        );
    }

    // Proves an update with nothing set is reported as "no changes", and the first bad field wins.
    #[test]
    fn update_rules() {
        assert_eq!(PackageUpdate::parse(None, None, None, None), Ok(None));
        assert!(PackageUpdate::parse(None, None, None, Some(false))
            .expect("ok")
            .is_some());
        let e = PackageUpdate::parse(Some(String::new()), None, Some(-1.0), None).expect_err("bad");
        assert_eq!(e.field, "title");
    }
}
