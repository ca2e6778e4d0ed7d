//! Groups and their transitive user members.
//!
//! See <https://learn.microsoft.com/graph/api/resources/group> and
//! <https://learn.microsoft.com/graph/api/group-list-transitivemembers>.

use futures::TryStreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;

use super::graph::{Call, GraphClient, GraphError, GraphTarget};
use super::odata::{Query, eq, path_segment};
use super::users::{USER_FIELDS, User};

const GROUP_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "mail",
    "mailEnabled",
    "securityEnabled",
];

/// The page size of member listings, the maximum Graph accepts for directory objects.
const MEMBER_PAGE_SIZE: u32 = 999;

/// A group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The object ID.
    pub id: String,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The primary SMTP address of a mail-enabled group.
    #[serde(default)]
    pub mail: Option<String>,
    /// Whether the group has an address.
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    /// Whether the group is a security group.
    #[serde(default)]
    pub security_enabled: Option<bool>,
}

/// The property a group is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupLookup {
    /// By object ID.
    Id(String),
    /// By primary SMTP address (`mail`).
    Mail(String),
    /// By display name, which need not be unique.
    DisplayName(String),
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

impl GraphClient {
    /// Returns the groups that match; several for an ambiguous display name, none when no
    /// group matches.
    pub async fn find_groups(&self, lookup: &GroupLookup) -> Result<Vec<Group>, GraphError> {
        let (target, query) = match lookup {
            GroupLookup::Id(id) => {
                let target = GraphTarget::new("get group", format!("group {id}"));
                let url = self.url(
                    &format!("groups/{}", path_segment(id)),
                    &Query::new().select(GROUP_FIELDS),
                );
                return match self.json(Call::get(target, url)).await {
                    Ok(group) => Ok(vec![group]),
                    Err(error) if error.is_not_found() => Ok(Vec::new()),
                    Err(error) => Err(error),
                };
            }
            GroupLookup::Mail(mail) => (
                GraphTarget::new("find group", format!("address {mail}")),
                Query::new().filter(eq("mail", mail)),
            ),
            GroupLookup::DisplayName(name) => (
                GraphTarget::new("find group", format!("display name '{name}'")),
                Query::new().filter(eq("displayName", name)),
            ),
        };
        let page: Collection<Group> = self
            .json(Call::get(
                target,
                self.url("groups", &query.select(GROUP_FIELDS)),
            ))
            .await?;
        Ok(page.value)
    }

    /// Streams the users in a group and in every group nested in it, page by page. Other
    /// member types (devices, contacts, the nested groups themselves) are left out by the
    /// `microsoft.graph.user` cast.
    pub fn transitive_user_members(
        &self,
        group_id: &str,
    ) -> BoxStream<'_, Result<User, GraphError>> {
        let target = GraphTarget::new("list transitive members", format!("group {group_id}"));
        let url = self.url(
            &format!(
                "groups/{}/transitiveMembers/microsoft.graph.user",
                path_segment(group_id)
            ),
            &Query::new().select(USER_FIELDS).top(MEMBER_PAGE_SIZE),
        );
        self.paged(target, url)
    }

    /// Collects [`transitive_user_members`](Self::transitive_user_members).
    pub async fn collect_transitive_user_members(
        &self,
        group_id: &str,
    ) -> Result<Vec<User>, GraphError> {
        self.transitive_user_members(group_id).try_collect().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::entra::graph::tests::{
        client, fast_options, graph_error, json_response, path_of, query_pairs,
    };
    use crate::providers::exchange::test_server::TestServer;

    #[tokio::test]
    async fn group_is_found_by_mail() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [{"id": "g-1", "mail": "sales@lab.example"}]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let groups = client
            .find_groups(&GroupLookup::Mail("sales@lab.example".to_owned()))
            .await
            .unwrap();
        assert_eq!(groups.len(), 1);
        let pairs = query_pairs(&server.recorded()[0]);
        assert_eq!(pairs[0].1, "mail eq 'sales@lab.example'");
    }

    #[tokio::test]
    async fn missing_group_id_is_empty() {
        let server =
            TestServer::http(|_| graph_error(404, "Request_ResourceNotFound", "gone")).await;
        let client = client(&server, fast_options());
        let groups = client
            .find_groups(&GroupLookup::Id("g-9".to_owned()))
            .await
            .unwrap();
        assert!(groups.is_empty());
    }

    #[tokio::test]
    async fn transitive_members_use_cast_and_page_size() {
        let server = TestServer::http(|request| {
            if request.path.contains("skiptoken") {
                json_response(200, serde_json::json!({"value": [{"id": "u-3"}]}))
            } else {
                let next = format!(
                    "http://{}/v1.0/groups/g-1/transitiveMembers/microsoft.graph.user?$skiptoken=x",
                    request.header("host").unwrap()
                );
                json_response(
                    200,
                    serde_json::json!({"value": [{"id": "u-1"}, {"id": "u-2"}], "@odata.nextLink": next}),
                )
            }
        })
        .await;
        let client = client(&server, fast_options());
        let members = client.collect_transitive_user_members("g-1").await.unwrap();
        let ids: Vec<&str> = members.iter().map(|user| user.id.as_str()).collect();
        assert_eq!(ids, ["u-1", "u-2", "u-3"]);

        let first = &server.recorded()[0];
        assert_eq!(
            path_of(first),
            "/v1.0/groups/g-1/transitiveMembers/microsoft.graph.user"
        );
        assert!(query_pairs(first).contains(&("$top".to_owned(), "999".to_owned())));
    }
}
