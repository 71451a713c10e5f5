//! The end-to-end flow tests, one module per clause or concern, linked into one test binary
//! (each module once was its own binary: fifty links of the whole stack cost minutes and
//! gigabytes). Run one clause with `cargo nextest run -E 'test(/h626_8_4/)'`.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod support {
    pub(crate) mod relay;
    pub(crate) mod scripted;
    pub(crate) mod source_camera;
    pub(crate) mod talk;
}

mod authz_matrix;
mod cmu_database_restart;
mod h626_6_1_12_snapshots;
mod h626_6_1_14_faults;
mod h626_6_1_14_metrics;
mod h626_6_1_1_equipment;
mod h626_6_1_1_signup;
mod h626_6_1_8_backchannel;
mod h626_6_1_8_camera_aac;
mod h626_6_1_8_talk;
mod h626_6_1_9_alarm_messages;
mod h626_6_1_9_web_push;
mod h626_6_2_crm;
mod h626_6_2_users;
mod h626_6_3_2_timeline;
mod h626_6_3_pwa;
mod h626_6_3_web_client;
mod h626_7_2_clock_sync;
mod h626_7_3_relay;
mod h626_7_accounting;
mod h626_7_cluster;
mod h626_7_cmu_instances;
mod h626_8_11_1_campaign;
mod h626_8_11_1_upgrade;
mod h626_8_1_registration;
mod h626_8_2_binding;
mod h626_8_3_mn_nd;
mod h626_8_3_nat_lab;
mod h626_8_4_camera_audio;
mod h626_8_4_camera_sources;
mod h626_8_4_live;
mod h626_8_4_webrtc;
mod h626_8_5_device_control;
mod h626_8_5_onvif_ptz;
mod h626_8_6_sharing;
mod h626_8_6_web_unshare;
mod h626_8_7_1_cloud;
mod h626_8_7_1_share;
mod h626_8_7_2_nvr;
mod h626_8_7_2_nvr_faults;
mod h626_8_7_3_sd;
mod h626_8_8_alarm_camera;
mod h626_8_8_alarm_loop;
mod h626_8_8_alarms;
mod h626_8_9_2_cmu_params;
mod json_logs;
mod loadgen;
mod rtsp_burst;
mod scu_restart;
