//! A helper for the many closed vocabularies of the domain (services, channels, roles …):
//! each is an enum whose JSON and database form is its snake_case name.

/// Declares a closed vocabulary: the enum, `ALL`, `as_str`, `Display`, `FromStr` (with an
/// error listing the accepted names) and serde in snake_case.
#[macro_export]
#[doc(hidden)]
macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        pub enum $name:ident : $noun:literal {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::FieldError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::error::FieldError::new(
                        "",
                        format!(
                            "unknown {} `{}`, expected one of: {}",
                            $noun,
                            other,
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}
