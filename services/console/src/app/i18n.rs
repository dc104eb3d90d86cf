//! The console's words in Chinese and English. The language comes from the
//! `huoke_lang` cookie (set by the switch in the header), else from the browser's
//! `Accept-Language`; Chinese unless the browser prefers English.

use actix_web::HttpRequest;

pub const LANG_COOKIE: &str = "huoke_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn of(req: &HttpRequest) -> Lang {
        if let Some(chosen) = req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return chosen;
        }
        let accepted = req
            .headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The first language the browser names decides.
        let first = accepted.split(',').next().unwrap_or("").trim().to_ascii_lowercase();
        if first.starts_with("en") { Lang::En } else { Lang::Zh }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The text for `key`; the key itself when it has none (a unit test keeps every
    /// key used in the templates in the table).
    pub fn t(self, key: &str) -> &'static str {
        match TEXTS.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self {
                Lang::Zh => zh,
                Lang::En => en,
            },
            None => "??",
        }
    }
}

/// (key, 中文, English)
pub const TEXTS: &[(&str, &str, &str)] = &[
    ("app.name", "获客", "huoke"),
    ("lang.switch", "English", "中文"),
    ("login.title", "登录", "Sign in"),
    ("login.tenant", "企业代码", "Company code"),
    ("login.email", "邮箱", "E-mail"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Sign in"),
    (
        "login.failed",
        "企业代码、邮箱或密码不正确",
        "Company code, e-mail or password is wrong",
    ),
    (
        "login.busy",
        "尝试次数过多，请稍后再试",
        "Too many attempts; try again later",
    ),
    ("logout", "退出", "Sign out"),
    ("nav.inbox", "我的线索", "Inbox"),
    ("nav.pool", "公海", "Public pool"),
    ("nav.codes", "活码", "Live codes"),
    ("nav.campaigns", "活动与渠道", "Campaigns"),
    ("nav.cards", "名片", "Cards"),
    ("nav.forms", "表单", "Forms"),
    ("nav.sources", "Webhook 来源", "Webhook sources"),
    ("nav.funnel", "漏斗", "Funnel"),
    ("nav.teams", "团队", "Teams"),
    ("nav.routing", "分配规则", "Routing rules"),
    ("nav.sla", "SLA 策略", "SLA policies"),
    ("nav.sla_report", "SLA 看板", "SLA dashboard"),
    ("nav.dead_letters", "死信", "Dead letters"),
    ("nav.staff", "员工", "Staff"),
    ("nav.api_keys", "API 密钥", "API keys"),
    ("nav.wecom", "企业微信", "WeCom"),
    ("inbox.title", "我的线索", "My inbox"),
    ("inbox.empty", "暂无线索", "Nothing here yet"),
    ("inbox.live", "实时更新", "Live"),
    ("inbox.offline", "连接中断，正在重连…", "Disconnected; reconnecting…"),
    ("inbox.due", "接受时限", "Accept within"),
    ("inbox.overdue", "已超时", "Overdue"),
    ("inbox.accept", "接受", "Accept"),
    ("inbox.reject", "退回", "Reject"),
    ("inbox.reject_reason", "退回原因", "Reason"),
    ("lead.name", "姓名", "Name"),
    ("lead.company", "公司", "Company"),
    ("lead.title", "职位", "Title"),
    ("lead.phone", "手机", "Phone"),
    ("lead.email", "邮箱", "E-mail"),
    ("lead.grade", "等级", "Grade"),
    ("lead.score", "分数", "Score"),
    ("lead.status", "状态", "Status"),
    ("lead.channel", "渠道", "Channel"),
    ("lead.state", "分配状态", "Offer"),
    ("lead.history", "轨迹", "History"),
    ("lead.activity", "记录跟进", "Log an activity"),
    ("lead.activity_kind", "方式", "Kind"),
    ("lead.activity_body", "内容", "Notes"),
    ("lead.save", "保存", "Save"),
    ("lead.change_status", "更新状态", "Change status"),
    ("lead.reason", "原因", "Reason"),
    ("lead.release", "退回公海", "Give back to the pool"),
    ("pool.claim", "领取", "Claim"),
    ("pool.empty", "公海暂无线索", "The pool is empty"),
    ("codes.title", "员工活码", "Live codes"),
    ("codes.new", "新建活码", "New live code"),
    ("codes.name", "名称", "Name"),
    ("codes.members", "成员", "Members"),
    ("codes.daily_limit", "每人每日上限", "Daily limit per member"),
    ("codes.create", "创建", "Create"),
    ("codes.campaign", "所属活动", "Campaign"),
    ("codes.schedule", "在线时段 (JSON，可选)", "Schedule (JSON, optional)"),
    ("codes.scan_url", "扫码链接", "Scan URL"),
    ("codes.download", "下载", "Download"),
    ("codes.active", "在线", "Online"),
    ("codes.inactive", "已下线", "Offline"),
    ("codes.empty", "还没有活码", "No live codes yet"),
    ("table.empty", "暂无数据", "Nothing here yet"),
    ("table.more", "下一页", "Next page"),
    ("error.title", "出错了", "Something went wrong"),
    (
        "error.forbidden",
        "你的角色不能查看此页",
        "Your role cannot see this page",
    ),
    ("error.back", "返回", "Back"),
    ("saved", "已保存", "Saved"),
    ("campaigns.zip", "二维码包", "QR zip"),
    ("forms.open", "打开", "Open"),
    ("col.campaign", "活动 ID", "Campaign id"),
    ("col.fields", "字段", "Fields"),
    ("col.required", "必填", "Required"),
    ("col.thank_you", "感谢语", "Thank-you text"),
    ("col.allowed_origins", "允许嵌入的网站", "Allowed origins"),
    ("col.mapping", "字段映射 (JSON)", "Field mapping (JSON)"),
    ("col.event_id_pointer", "事件 ID 指针", "Event id pointer"),
    ("col.password", "初始密码", "Initial password"),
    ("action.disable", "停用", "Disable"),
    ("action.replay", "重放", "Replay"),
    ("action.deactivate", "停用并移交", "Switch off and hand over"),
    ("action.activate", "启用", "Switch on"),
    ("action.capacity", "设容量", "Set capacity"),
    ("action.wecom_userid", "关联企业微信", "Link WeCom"),
    ("col.wecom_userid", "企业微信账号", "WeCom user id"),
    ("action.revoke", "吊销", "Revoke"),
    ("form.new", "新建", "New"),
    ("form.create", "创建", "Create"),
    ("doc.document", "配置 (JSON)", "Configuration (JSON)"),
    ("doc.save", "校验并保存", "Validate and save"),
    ("doc.trial", "试算输入", "Trial input"),
    ("doc.simulate", "模拟分配", "Simulate"),
    ("doc.outcome", "模拟结果", "Outcome"),
    ("funnel.by", "维度", "By"),
    ("funnel.show", "查看", "Show"),
    ("funnel.from", "从", "From"),
    ("funnel.to", "到", "To"),
    ("by.channel", "渠道", "Channel"),
    ("by.campaign", "活动", "Campaign"),
    ("by.live_code", "活码", "Live code"),
    ("by.team", "团队", "Team"),
    ("codes.switch_off", "下线", "Take offline"),
    ("codes.switch_on", "上线", "Put online"),
    ("col.name", "名称", "Name"),
    ("col.email", "邮箱", "E-mail"),
    ("col.roles", "角色", "Roles"),
    ("col.capacity", "容量", "Capacity"),
    ("col.daily_cap", "每日上限", "Daily cap"),
    ("col.active", "在职", "Active"),
    ("col.created_at", "创建时间", "Created"),
    ("col.kind", "类型", "Kind"),
    ("col.title", "职位", "Title"),
    ("col.channel", "渠道", "Channel"),
    ("col.url", "链接", "URL"),
    ("col.scans", "扫码", "Scans"),
    ("col.captures", "留资", "Captures"),
    ("col.leads", "线索", "Leads"),
    ("col.mql", "MQL", "MQL"),
    ("col.sql", "SQL", "SQL"),
    ("col.sal", "SAL", "SAL"),
    ("col.won", "成交", "Won"),
    ("col.manager", "负责人", "Manager"),
    ("col.members", "成员", "Members"),
    ("col.team", "团队", "Team"),
    ("col.offers", "分配", "Offers"),
    ("col.accepted", "接受", "Accepted"),
    ("col.rejected", "退回", "Rejected"),
    ("col.breached", "超时", "Breached"),
    ("col.accept_median_s", "接受中位时长(秒)", "Median time to accept (s)"),
    (
        "col.first_contact_median_s",
        "首次联系中位时长(秒)",
        "Median time to first contact (s)",
    ),
    ("col.queue", "队列", "Queue"),
    ("col.type", "消息类型", "Type"),
    ("col.reason", "原因", "Reason"),
    ("col.attempts", "尝试次数", "Attempts"),
    ("col.dead_at", "放弃时间", "Given up"),
    ("col.prefix", "前缀", "Prefix"),
    ("col.scopes", "权限范围", "Scopes"),
    ("col.last_used_at", "最近使用", "Last used"),
    ("col.revoked_at", "吊销时间", "Revoked"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_used_in_a_template_has_both_languages() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for part in text.split("t(\"").skip(1) {
                let key = part.split('"').next().unwrap();
                if !TEXTS
                    .iter()
                    .any(|(k, zh, en)| *k == key && !zh.is_empty() && !en.is_empty())
                {
                    missing.push(key.to_string());
                }
            }
        }
        assert!(missing.is_empty(), "keys without text: {missing:?}");
    }

    #[test]
    fn keys_are_unique() {
        let mut keys: Vec<_> = TEXTS.iter().map(|(k, _, _)| *k).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
    }

    #[test]
    fn the_browser_language_decides_unless_chosen() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Accept-Language", "en-US,en;q=0.9,zh;q=0.5"))
            .to_http_request();
        assert_eq!(Lang::of(&req), Lang::En);
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5"))
            .to_http_request();
        assert_eq!(Lang::of(&req), Lang::Zh);
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Accept-Language", "en-US"))
            .cookie(actix_web::cookie::Cookie::new(LANG_COOKIE, "zh"))
            .to_http_request();
        assert_eq!(Lang::of(&req), Lang::Zh);
        assert_eq!(
            Lang::of(&actix_web::test::TestRequest::default().to_http_request()),
            Lang::Zh
        );
    }
}
