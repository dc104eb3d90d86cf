//! The answer of `externalcontact/get`: the customer as WeCom knows them, and each
//! member who added them with what that member noted. Every field is optional —
//! WeCom leaves out what it does not know or may not share (a WeChat user has no
//! company; `unionid` needs a bound WeChat Open Platform account).

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ExternalContact {
    #[serde(default)]
    pub external_contact: Customer,
    #[serde(default)]
    pub follow_user: Vec<FollowUser>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Customer {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub corp_name: Option<String>,
    #[serde(default)]
    pub corp_full_name: Option<String>,
    /// 1: a WeChat user; 2: a WeCom user (of another company).
    #[serde(default, rename = "type")]
    pub kind: Option<i64>,
    /// 0 unknown, 1 male, 2 female.
    #[serde(default)]
    pub gender: Option<i64>,
    #[serde(default)]
    pub unionid: Option<String>,
}

/// A member of the tenant's corp who has the customer as a contact.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct FollowUser {
    #[serde(default)]
    pub userid: String,
    #[serde(default)]
    pub remark: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub remark_corp_name: Option<String>,
    #[serde(default)]
    pub remark_mobiles: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Tag {
    #[serde(default)]
    pub tag_name: Option<String>,
}

impl ExternalContact {
    /// What `member_userid` noted about the customer, if they follow them.
    pub fn noted_by(&self, member_userid: &str) -> Option<&FollowUser> {
        self.follow_user.iter().find(|f| f.userid == member_userid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wecoms_documented_answer() {
        let answer = serde_json::json!({
            "errcode": 0, "errmsg": "ok",
            "external_contact": {
                "external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", "name": "李四", "position": "采购经理",
                "avatar": "http://p.qlogo.cn/bizmail/x/0", "corp_name": "腾讯", "corp_full_name": "腾讯科技有限公司",
                "type": 2, "gender": 1, "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
                "external_profile": {"external_attr": []}
            },
            "follow_user": [
                {"userid": "rocky", "remark": "李部长", "description": "对接采购事务", "createtime": 1525779812,
                 "tags": [{"group_name": "客户", "tag_name": "重点", "tag_id": "etAJ", "type": 1}],
                 "remark_corp_name": "腾讯科技", "remark_mobiles": ["13800000001"], "add_way": 1, "state": "s1"},
                {"userid": "tommy", "createtime": 1525881637}
            ],
            "next_cursor": "NEXT"
        });
        let contact: ExternalContact = serde_json::from_value(answer).unwrap();
        assert_eq!(contact.external_contact.name.as_deref(), Some("李四"));
        assert_eq!(contact.external_contact.kind, Some(2));
        let rocky = contact.noted_by("rocky").unwrap();
        assert_eq!(rocky.remark_mobiles, ["13800000001"]);
        assert_eq!(rocky.tags[0].tag_name.as_deref(), Some("重点"));
        assert!(contact.noted_by("tommy").unwrap().remark.is_none());
        assert!(contact.noted_by("nobody").is_none());
    }
}
