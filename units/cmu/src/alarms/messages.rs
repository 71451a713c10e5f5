//! H.626.4 6.1.9: alarm message templates and notification settings, per user and alarm
//! kind; the rules that pick a user's template and channels are plain functions.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use peercam_alarm::AlarmKind;
use peercam_alarm::template::{self, Values};
use peercam_signal::cm_alarm::{
    AlarmTemplates, Channels, NotificationSettings, TemplatePreview, TemplatePreviewRequest,
};
use peercam_signal::control::FieldError;

use crate::auth::Principal;
use crate::error::{ApiErr, ApiResult};
use crate::json::Json;
use crate::store::alarms as stored;
use crate::{Shared, now_ms};

/// Where alarms of `kind` go when the user chose nothing. Device alarms may go by SMS (the
/// camera's strategy, `linkage.sms`, decides); platform alarms by SMS only when chosen;
/// logins and logouts only in the apps.
pub(crate) fn default_channels(kind: AlarmKind) -> Channels {
    let (sms, push) = match kind {
        k if k.from_device() => (true, true),
        AlarmKind::Login | AlarmKind::Logout => (false, false),
        _ => (false, true),
    };
    Channels {
        sms,
        push,
        app: true,
    }
}

/// The user's channels for `kind`, from what they stored.
pub(crate) fn channels_of(stored: &[(String, stored::Channels)], kind: AlarmKind) -> Channels {
    stored.iter().find(|(k, _)| k == kind.as_str()).map_or_else(
        || default_channels(kind),
        |(_, (sms, push, app))| Channels {
            sms: *sms,
            push: *push,
            app: *app,
        },
    )
}

/// Every kind's template: the user's, or the default in their language.
pub(crate) fn effective_templates(
    stored: &[(String, String)],
    language: &str,
) -> BTreeMap<String, String> {
    AlarmKind::ALL
        .into_iter()
        .map(|k| {
            let own = stored.iter().find(|(kind, _)| kind == k.as_str());
            let text = own.map_or_else(
                || template::default_template(k, language).to_owned(),
                |(_, t)| t.clone(),
            );
            (k.as_str().to_owned(), text)
        })
        .collect()
}

/// Checks templates sent by a user; every refusal names its field, e.g. `templates.motion`.
pub(crate) fn check_templates(
    set: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut ok = Vec::new();
    for (kind, text) in set {
        let field = format!("templates.{kind}");
        if AlarmKind::parse(kind).is_none() {
            errors.push(FieldError::new(field, "unknown alarm kind"));
        } else if let Err(e) = template::parse(text) {
            errors.push(FieldError::new(field, e.to_string()));
        } else {
            ok.push((kind.clone(), text.clone()));
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

/// Renders `text` (checked before) with `values`; a template that no longer parses falls
/// back to the default.
pub(crate) fn render(text: &str, kind: AlarmKind, language: &str, values: &Values) -> String {
    template::parse(text)
        .or_else(|_| template::parse(template::default_template(kind, language)))
        .map(|t| t.render(values))
        .unwrap_or_default()
}

/// The message for an alarm of `kind`, in `user`'s words, language and time zone.
pub(crate) async fn compose(
    st: &Shared,
    user: i64,
    kind: AlarmKind,
    mut values: Values,
    at_ms: u64,
) -> ApiResult<String> {
    let params = crate::settings::user_params(st, user).await?;
    let own = stored::templates(&st.store, user).await?;
    let text = effective_templates(&own, &params.language)
        .remove(kind.as_str())
        .unwrap_or_default();
    values.time = template::format_time(at_ms, params.utc_offset_min);
    values.kind = kind.as_str().to_owned();
    Ok(render(&text, kind, &params.language, &values))
}

/// 6.1.9: the caller's templates, every kind.
pub(crate) async fn get_templates(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<AlarmTemplates>> {
    let params = crate::settings::user_params(&st, p.id).await?;
    let own = stored::templates(&st.store, p.id).await?;
    Ok(Json(AlarmTemplates {
        templates: effective_templates(&own, &params.language),
    }))
}

/// 6.1.9: replaces the caller's templates, all or nothing (422 naming each bad field).
pub(crate) async fn set_templates(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<AlarmTemplates>,
) -> ApiResult<Json<AlarmTemplates>> {
    let set = check_templates(&req.templates).map_err(ApiErr::invalid)?;
    stored::put_templates(&st.store, p.id, &set).await?;
    get_templates(State(st), Extension(p)).await
}

/// 6.1.9: renders a template for a sample alarm; 422 naming `template` if it is refused.
pub(crate) async fn preview(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<TemplatePreviewRequest>,
) -> ApiResult<Json<TemplatePreview>> {
    let t = template::parse(&req.template)
        .map_err(|e| ApiErr::invalid(vec![FieldError::new("template", e.to_string())]))?;
    let params = crate::settings::user_params(&st, p.id).await?;
    let values = Values {
        camera: "Front door".into(),
        time: template::format_time(now_ms(), params.utc_offset_min),
        kind: req.kind.as_str().into(),
        detail: "sample".into(),
        link: format!("{}/#/alarms/1", st.public_url),
    };
    let text = t.render(&values);
    let cost = template::sms_cost(&text);
    Ok(Json(TemplatePreview {
        encoding: cost.encoding.as_str().into(),
        units: cost.units,
        segments: cost.segments,
        text,
    }))
}

/// 6.1.9: where the caller's alarms of each kind go.
pub(crate) async fn get_notifications(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<NotificationSettings>> {
    let own = stored::notify(&st.store, p.id).await?;
    let kinds = AlarmKind::ALL
        .into_iter()
        .map(|k| (k.as_str().to_owned(), channels_of(&own, k)))
        .collect();
    Ok(Json(NotificationSettings { kinds }))
}

/// 6.1.9: changes the channels of the kinds listed (422 naming an unknown kind).
pub(crate) async fn set_notifications(
    State(st): State<Shared>,
    Extension(p): Extension<Principal>,
    Json(req): Json<NotificationSettings>,
) -> ApiResult<Json<NotificationSettings>> {
    let mut set = Vec::new();
    let mut errors = Vec::new();
    for (kind, c) in &req.kinds {
        if AlarmKind::parse(kind).is_none() {
            errors.push(FieldError::new(
                format!("kinds.{kind}"),
                "unknown alarm kind",
            ));
        }
        set.push((kind.clone(), (c.sms, c.push, c.app)));
    }
    if !errors.is_empty() {
        return Err(ApiErr::invalid(errors));
    }
    stored::put_notify(&st.store, p.id, &set).await?;
    get_notifications(State(st), Extension(p)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h626_6_1_9_template_refused_names_field() {
        let mut set = BTreeMap::new();
        set.insert("motion".to_owned(), "{camera} {cam}".to_owned());
        set.insert("lightning".to_owned(), "x".to_owned());
        set.insert("login".to_owned(), "ok {time}".to_owned());
        let errors = check_templates(&set).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["templates.lightning", "templates.motion"]);
        assert!(errors[1].message.contains("{cam}") && errors[1].message.contains("position 9"));
    }

    #[test]
    fn h626_6_1_9_own_templates_and_defaults_per_kind() {
        let own = vec![("motion".to_owned(), "Bewegung {camera}".to_owned())];
        let t = effective_templates(&own, "en");
        assert_eq!(t.len(), AlarmKind::ALL.len());
        assert_eq!(t["motion"], "Bewegung {camera}");
        assert!(t["camera_offline"].contains("offline"));
        let v = Values {
            camera: "Gate".into(),
            ..Values::default()
        };
        assert_eq!(
            render(&t["motion"], AlarmKind::Motion, "en", &v),
            "Bewegung Gate"
        );
    }

    #[test]
    fn h626_6_1_9_channels_default_per_kind_and_stored_override() {
        assert!(default_channels(AlarmKind::Motion).sms);
        assert!(!default_channels(AlarmKind::Login).sms);
        assert!(!default_channels(AlarmKind::CameraOffline).sms);
        let own = vec![("camera_offline".to_owned(), (true, false, false))];
        let c = channels_of(&own, AlarmKind::CameraOffline);
        assert!(c.sms && !c.push && !c.app);
        assert_eq!(
            channels_of(&own, AlarmKind::Tamper),
            default_channels(AlarmKind::Tamper)
        );
    }
}
