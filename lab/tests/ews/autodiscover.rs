//! Autodiscover on the on-premises listener: POX and SOAP.

use siu_lab::Lab;

use crate::common::*;

fn pox(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#
    )
}

fn url(lab: &Lab, path: &str) -> url::Url {
    let mut url = lab.endpoints().ews.clone();
    url.set_path(path);
    url
}

#[tokio::test]
async fn pox_returns_ews_url_or_redirect() {
    let lab = start(None).await;
    let client = client(&lab);
    let endpoint = url(&lab, "/Autodiscover/Autodiscover.xml");
    let alice = Auth::Basic(
        "alice@lab.example".into(),
        password(&lab, "alice@lab.example"),
    );

    let unauthenticated = client.get(endpoint.clone()).send().await.expect("answered");
    assert_eq!(unauthenticated.status(), 401);

    let local = post(&client, &endpoint, &alice, pox("alice@lab.example")).await;
    let root = local.xml();
    assert_eq!(
        first_named(&root, "EwsUrl").map(|e| e.text.clone()),
        Some(lab.endpoints().ews.to_string())
    );

    let remote = post(&client, &endpoint, &alice, pox("heidi.hill@lab.example")).await;
    let root = remote.xml();
    assert_eq!(
        first_named(&root, "Action").map(|e| e.text.as_str()),
        Some("redirectAddr")
    );
    assert_eq!(
        first_named(&root, "RedirectAddr").map(|e| e.text.as_str()),
        Some("heidi.hill@labexample.onmicrosoft.com")
    );

    for unknown in [
        "nobody@lab.example",
        "someone@elsewhere.example",
        "newsletter@lab.example",
    ] {
        let answer = post(&client, &endpoint, &alice, pox(unknown)).await;
        let root = answer.xml();
        assert_eq!(
            first_named(&root, "ErrorCode").map(|e| e.text.as_str()),
            Some("500"),
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn soap_get_user_settings_returns_urls() {
    let lab = start(None).await;
    let client = client(&lab);
    let endpoint = url(&lab, "/autodiscover/autodiscover.svc");
    let alice = Auth::Basic("LAB\\alice".into(), password(&lab, "alice@lab.example"));
    let request = |mailbox: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{mailbox}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>UserDisplayName</a:Setting><a:Setting>UserDN</a:Setting><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting><a:Setting>NoSuchSetting</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#
        )
    };
    let answer = post(&client, &endpoint, &alice, request("alice@lab.example")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let root = answer.xml();
    let mut settings = Vec::new();
    all_named(&root, "UserSetting", &mut settings);
    let pairs: Vec<(String, String)> = settings
        .iter()
        .map(|s| {
            (
                s.child_text("Name").unwrap_or_default().to_string(),
                s.child_text("Value").unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs[0],
        ("UserDisplayName".to_string(), "Alice Archer".to_string())
    );
    assert!(pairs[1].1.starts_with("/o=LAB/"), "{pairs:?}");
    assert_eq!(pairs[2].1, lab.endpoints().ews.to_string());
    assert_eq!(
        first_named(&root, "SettingName").map(|e| e.text.as_str()),
        Some("NoSuchSetting")
    );

    let remote = post(&client, &endpoint, &alice, request("carol@lab.example")).await;
    let root = remote.xml();
    let user = first_named(&root, "UserResponse").expect("UserResponse");
    assert_eq!(user.child_text("ErrorCode"), Some("RedirectAddress"));
    assert_eq!(
        user.child_text("RedirectTarget"),
        Some("carol@labexample.onmicrosoft.com")
    );
    let unknown = post(&client, &endpoint, &alice, request("nobody@lab.example")).await;
    let root = unknown.xml();
    assert_eq!(
        first_named(&root, "UserResponse").and_then(|u| u.child_text("ErrorCode")),
        Some("InvalidUser")
    );
}
