//! Connector domain newtypes and closed enums, each built only through a validating parse.

use std::fmt;

/// A connector name: 1–64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorName(String);

impl ConnectorName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("name must not be empty".into());
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(format!("name must be at most {} characters", Self::MAX_LEN));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err("name may contain only ASCII letters, digits, `_` and `-`".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// The accepted values, for error messages: `'a', 'b'`.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| format!("'{}'", v.as_str())).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// What the upstream speaks.
    Protocol { Mcp = "mcp", Http = "http" }
);
wire_enum!(
    /// Who can see a connector (`shared_global` is reserved for built-in connectors).
    Visibility { Private = "private", SharedWorkspace = "shared_workspace", SharedOrg = "shared_org" }
);
wire_enum!(
    /// Who owns a connector, or which level deactivated it (the contract's ConsumerType).
    ConsumerType { User = "user", Workspace = "workspace", Org = "org" }
);
wire_enum!(
    /// The consumer level in paths (`organization`, where bodies say `org`).
    ConsumerScope { User = "user", Workspace = "workspace", Organization = "organization" }
);
wire_enum!(
    /// Authentication methods a connector may declare.
    AuthenticationType {
        Oauth2 = "oauth2",
        Bearer = "bearer",
        None = "none",
        GithubApp = "github_app",
        SlackApp = "slack_app",
    }
);

impl ConsumerScope {
    pub fn consumer_type(self) -> ConsumerType {
        match self {
            ConsumerScope::User => ConsumerType::User,
            ConsumerScope::Workspace => ConsumerType::Workspace,
            ConsumerScope::Organization => ConsumerType::Org,
        }
    }
}

impl Visibility {
    /// The owner type that goes with a visibility.
    pub fn owner_type(self) -> ConsumerType {
        match self {
            Visibility::Private => ConsumerType::User,
            Visibility::SharedWorkspace => ConsumerType::Workspace,
            Visibility::SharedOrg => ConsumerType::Org,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(ConnectorName::parse("git-hub_2").is_ok());
        assert!(ConnectorName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "bad name", "a/b", "é", "x.y", &"a".repeat(65)] {
            assert!(ConnectorName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enums_round_trip() {
        for v in Visibility::ALL {
            assert_eq!(Visibility::parse(v.as_str()), Some(*v));
        }
        assert_eq!(ConsumerScope::parse("org"), None);
        assert_eq!(ConsumerScope::Organization.consumer_type().as_str(), "org");
        assert_eq!(Visibility::SharedOrg.owner_type(), ConsumerType::Org);
    }
}
