//! The channels a capture can arrive through, after the business brief's list
//! (ads, website, earned media, social, live stream, seminars, EDM, SMS, call
//! centre, mini-program, QR codes, card scans, employee/group live codes, fission
//! posters, smart cards) plus the integration paths (API, forms, webhooks, import).

pub const CHANNELS: &[&str] = &[
    "ads",
    "website",
    "earned_media",
    "social",
    "live_stream",
    "seminar",
    "edm",
    "sms",
    "call_center",
    "mini_program",
    "qr_code",
    "card_scan",
    "employee_live_code",
    "group_live_code",
    "channel_code",
    "fission_poster",
    "smart_card",
    "referral",
    "web_form",
    "wecom",
    "api",
    "import",
    "crm",
    "other",
];

pub fn is_known(channel: &str) -> bool {
    CHANNELS.contains(&channel)
}
