//! Cm bodies of the operator's user management and of two-factor sign-in (H.626.4 6.2,
//! issue 18 item 2): the account list as the operator sees it, the password reset by SMS,
//! and TOTP enrolment (RFC 6238).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::cm::{AccountStatus, Role};

/// One account in `GET /api/v1/admin/users` (a superset of [`crate::cm::UserInfo`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AdminUserView {
    /// Account id.
    pub id: i64,
    /// Owner, sub-account or operator.
    pub role: Role,
    /// Phone (owners) or username (others).
    pub login: String,
    /// Account status.
    pub status: AccountStatus,
    /// For a sub-account: its owner's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    /// The name given at sign-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The contract id given at sign-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// Why the CRM refused the account, or why it waits for the CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_note: Option<String>,
    /// Whether the account signs in with a TOTP code too.
    pub totp: bool,
    /// Created, Unix seconds.
    pub created_at: u64,
}

/// `POST /api/v1/password/reset`: the code the operator's reset sent by SMS, and the new
/// password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The account's phone number.
    pub phone: String,
    /// The code received by SMS.
    pub code: String,
    /// At least 10 characters.
    pub new_password: String,
}

/// `POST /api/v1/me/totp/enroll`: the secret to put in an authenticator app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TotpEnrolment {
    /// The secret, base32 (RFC 4648, no padding).
    pub secret: String,
    /// The same as an `otpauth://totp/...` URI (SHA1, 6 digits, 30 s).
    pub uri: String,
}

/// A TOTP code (6 digits), or a recovery code where the route says so.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// The code.
    pub code: String,
}

/// `POST /api/v1/me/totp/confirm`'s answer: TOTP is on; the recovery codes are shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecoveryCodes {
    /// One-time codes that stand in for a TOTP code when the authenticator is lost.
    pub recovery_codes: Vec<String>,
}

/// `POST /api/v1/me/totp/disable`: the password and a current code (or a recovery code).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TotpDisable {
    /// The account's password.
    pub password: String,
    /// A TOTP code or a recovery code.
    pub code: String,
}

/// `GET /api/v1/me/totp`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TotpState {
    /// Whether sign-in asks for a code.
    pub enabled: bool,
    /// Whether the platform requires it of this account (operators, by configuration).
    pub required: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}
