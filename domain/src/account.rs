//! Who may use the server: console users (agents, experts, admins) and contracted
//! providers.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCollector, FieldError, ValidationErrors};
use crate::ids::{ProviderId, UserId};

vocabulary! {
    /// A console user's role.
    pub enum Role: "role" {
        /// A seat agent: creates hotline cases, watches alerts, handles cases.
        Agent = "agent",
        /// A phone expert: works the remote-diagnosis queue.
        Expert = "expert",
        /// An administrator: providers, users, configuration.
        Admin = "admin",
    }
}

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// User id.
    pub id: UserId,
    /// Login name, unique.
    pub username: String,
    /// Name shown in the console and the timeline.
    pub display_name: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// An expert's skills (e.g. `key_fob`, `ev`); empty for others.
    pub skills: Vec<String>,
    /// When the user was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A request to create a user, before validation.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    /// Login name: 3–64 characters of letters, digits, `.`, `_`, `-`, `@`.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    /// `agent`, `expert` or `admin`.
    pub role: Role,
    /// Skills in snake_case (experts).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Name shown in the console.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Minimum password length for console users.
pub const MIN_PASSWORD_CHARS: usize = 12;

impl NewUserInput {
    /// Checks the fields; the password itself is hashed by the caller.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ErrorCollector::default();
        let username_ok = (3..=64).contains(&self.username.chars().count())
            && self
                .username
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if !username_ok {
            errors.push(FieldError::new(
                "username",
                "must be 3 to 64 letters, digits, `.`, `_`, `-` or `@`",
            ));
        }
        if self.password.chars().count() < MIN_PASSWORD_CHARS {
            errors.push(FieldError::new(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if self.password.len() > 1024 {
            errors.push(FieldError::new("password", "must be at most 1024 bytes"));
        }
        for (index, skill) in self.skills.iter().enumerate() {
            let valid = !skill.is_empty()
                && skill.len() <= 48
                && skill
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                errors.push(FieldError::new(
                    format!("skills[{index}]"),
                    "must be a snake_case code",
                ));
            }
        }
        if let Some(name) = &self.display_name
            && name.chars().count() > 100
        {
            errors.push(FieldError::new(
                "display_name",
                "must be at most 100 characters",
            ));
        }
        errors.finish()
    }
}

/// A contracted tow company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provider {
    /// Provider id.
    pub id: ProviderId,
    /// Company name.
    pub name: String,
    /// Where offers and case updates are posted, if the provider integrates by webhook.
    pub webhook_url: Option<String>,
    /// Where the contract lets the provider work: a GeoJSON Polygon or MultiPolygon.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub service_area: Option<serde_json::Value>,
    /// Contract priority; higher wins near-ties.
    pub priority: i32,
    /// Which webhook secret is current (secrets are derived, never stored).
    pub webhook_secret_generation: u32,
    /// When the webhook secret was last rotated; the previous one stays valid for a day.
    pub webhook_secret_rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the provider was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(username: &str, password: &str) -> NewUserInput {
        NewUserInput {
            username: username.into(),
            password: password.into(),
            role: Role::Agent,
            skills: vec![],
            display_name: None,
        }
    }

    #[test]
    fn a_short_password_is_refused_naming_the_field() {
        let errors = user("ann", "short").validate().unwrap_err();
        assert_eq!(errors.0[0].field, "password");
    }

    #[test]
    fn usernames_with_spaces_are_refused() {
        assert!(user("ann lee", "correct horse battery").validate().is_err());
        assert!(user("ann.lee", "correct horse battery").validate().is_ok());
    }
}
