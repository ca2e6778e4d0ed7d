//! The Exchange management shell stand-in, run as the controller runs it.

use siu_lab::Lab;
use siu_lab::control::ManagementResponse;
use siu_lab::management::execute;

use crate::common::*;

fn run(lab: &Lab, online: bool, script: &str) -> ManagementResponse {
    execute(lab.state(), online, script)
}

fn json(response: &ManagementResponse) -> serde_json::Value {
    assert_eq!(response.exit_code, 0, "stderr: {}", response.stderr);
    serde_json::from_str(&response.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.stdout))
}

#[tokio::test]
async fn impersonation_is_granted_and_removed() {
    let lab = start(None).await;
    let created = run(
        &lab,
        false,
        "$ErrorActionPreference = 'Stop'\nNew-ManagementRoleAssignment -Role ApplicationImpersonation -User 'svc-siu@lab.example' -CustomRecipientWriteScope 'SIU Pilot mailboxes' | Select-Object Name,Role,RoleAssigneeName,CustomRecipientWriteScope | ConvertTo-Json",
    );
    assert_eq!(
        created.stdout,
        "{\n  \"Name\": \"ApplicationImpersonation-Sent Items Update service\",\n  \"Role\": \"ApplicationImpersonation\",\n  \"RoleAssigneeName\": \"Sent Items Update service\",\n  \"CustomRecipientWriteScope\": \"SIU Pilot mailboxes\"\n}\n"
    );
    {
        let world = lab.state().read();
        let svc = world.directory.by_sam("svc-siu").expect("svc-siu");
        let alice = world.directory.by_sam("alice").expect("alice");
        assert_eq!(world.check_impersonation(svc, alice), Ok(()));
    }

    let listed = run(
        &lab,
        false,
        "Get-ManagementRoleAssignment -Role ApplicationImpersonation -RoleAssignee svc-siu -GetEffectiveUsers | Select-Object Name,EffectiveUserName | ConvertTo-Json -Compress",
    );
    assert_eq!(
        listed.stdout,
        "{\"Name\":\"ApplicationImpersonation-Sent Items Update service\",\"EffectiveUserName\":\"Sent Items Update service\"}\n"
    );
    let duplicate = run(
        &lab,
        false,
        "New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc-siu",
    );
    assert_eq!(duplicate.exit_code, 1);
    assert!(
        duplicate.stderr.contains("already exists"),
        "{}",
        duplicate.stderr
    );

    let prompt = run(
        &lab,
        false,
        "Remove-ManagementRoleAssignment 'ApplicationImpersonation-Sent Items Update service'",
    );
    assert_eq!(prompt.exit_code, 1);
    assert!(
        prompt.stderr.contains("NonInteractive"),
        "{}",
        prompt.stderr
    );
    let removed = run(
        &lab,
        false,
        "Remove-ManagementRoleAssignment -Identity 'ApplicationImpersonation-Sent Items Update service' -Confirm:$false",
    );
    assert_eq!(removed.exit_code, 0, "{}", removed.stderr);
    assert!(lab.state().read().exchange.role_assignments.is_empty());
    let empty = run(
        &lab,
        false,
        "Get-ManagementRoleAssignment -Role ApplicationImpersonation | ConvertTo-Json",
    );
    assert_eq!((empty.exit_code, empty.stdout.as_str()), (0, ""));
}

#[tokio::test]
async fn exchange_online_ews_settings_change() {
    let lab = start(None).await;
    let before = json(&run(
        &lab,
        true,
        "Get-OrganizationConfig | Select-Object EwsEnabled,EwsAllowedAppIDs | ConvertTo-Json",
    ));
    assert_eq!(
        before,
        serde_json::json!({"EwsEnabled": null, "EwsAllowedAppIDs": []})
    );

    let app = lab
        .secrets()
        .get("manual-app.client-id")
        .expect("client ID")
        .to_string();
    let set = run(
        &lab,
        true,
        &format!("Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{{Add='{app}'}}"),
    );
    assert_eq!(set.exit_code, 0, "{}", set.stderr);
    assert!(lab.state().read().exchange.online.ews_allows(&app));
    let after = json(&run(
        &lab,
        true,
        "Get-OrganizationConfig | Select-Object EwsEnabled,EwsAllowedAppIDs | ConvertTo-Json",
    ));
    assert_eq!(
        after,
        serde_json::json!({"EwsEnabled": true, "EwsAllowedAppIDs": [app]})
    );

    let not_guid = run(
        &lab,
        true,
        "Set-OrganizationConfig -EwsAllowedAppIDs @{Add='not-a-guid'}",
    );
    assert_eq!(not_guid.exit_code, 1);
    let on_premises = run(
        &lab,
        false,
        "Set-OrganizationConfig -EwsAllowedAppIDs @{Add='x'}",
    );
    assert!(
        on_premises.stderr.contains(
            "A parameter cannot be found that matches parameter name 'EwsAllowedAppIDs'."
        ),
        "{}",
        on_premises.stderr
    );
}

#[tokio::test]
async fn mailboxes_show_their_location() {
    let lab = start(None).await;
    let select = "| Select-Object RecipientTypeDetails,PrimarySmtpAddress,UserPrincipalName | ConvertTo-Json";
    let alice = json(&run(
        &lab,
        false,
        &format!("Get-Mailbox -Identity alice@lab.example {select}"),
    ));
    assert_eq!(alice["RecipientTypeDetails"], "UserMailbox");
    let remote = json(&run(
        &lab,
        false,
        &format!("Get-RemoteMailbox hhill {select}"),
    ));
    assert_eq!(
        remote,
        serde_json::json!({"RecipientTypeDetails": "RemoteUserMailbox", "PrimarySmtpAddress": "heidi.hill@lab.example", "UserPrincipalName": "hhill@lab.example"})
    );
    let recipient = json(&run(&lab, false, &format!("Get-Recipient carol {select}")));
    assert_eq!(recipient["RecipientTypeDetails"], "RemoteUserMailbox");
    // Get-Mailbox does not return remote mailboxes on-premises.
    let missing = run(&lab, false, "Get-Mailbox carol@lab.example");
    assert_eq!(missing.exit_code, 1);
    assert!(
        missing.stderr.contains("couldn't be found"),
        "{}",
        missing.stderr
    );
    let cloud = json(&run(
        &lab,
        true,
        &format!("Get-Mailbox carol@lab.example {select}"),
    ));
    assert_eq!(cloud["RecipientTypeDetails"], "UserMailbox");
}

#[tokio::test]
async fn powershell_errors_and_hostile_text() {
    let lab = start(None).await;
    let unknown = run(&lab, false, "Get-Foo -Bar");
    assert_eq!(unknown.exit_code, 1);
    assert!(
        unknown
            .stderr
            .starts_with("Get-Foo: The term 'Get-Foo' is not recognized as the name of a cmdlet"),
        "{}",
        unknown.stderr
    );
    let parameter = run(&lab, false, "Get-Mailbox -Bogus x");
    assert!(
        parameter
            .stderr
            .contains("A parameter cannot be found that matches parameter name 'Bogus'."),
        "{}",
        parameter.stderr
    );
    let missing = run(
        &lab,
        false,
        "New-ManagementRoleAssignment -Role ApplicationImpersonation",
    );
    assert!(
        missing
            .stderr
            .contains("missing mandatory parameters: User."),
        "{}",
        missing.stderr
    );

    // With Stop, the first error ends the script; nothing after it runs.
    let stopped = run(
        &lab,
        false,
        "$ErrorActionPreference = 'Stop'; Get-Foo; New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc-siu",
    );
    assert_eq!(stopped.exit_code, 1);
    assert!(lab.state().read().exchange.role_assignments.is_empty());
    // A script that does not parse runs nothing at all.
    let unparsed = run(
        &lab,
        false,
        "New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc-siu; Get-Mailbox \"$(whoami)\"",
    );
    assert_eq!(unparsed.exit_code, 1);
    assert!(
        unparsed.stderr.starts_with("ParserError"),
        "{}",
        unparsed.stderr
    );
    assert!(lab.state().read().exchange.role_assignments.is_empty());

    grant_impersonation(&lab, "svc-siu", None);
    let injected = run(
        &lab,
        false,
        "Get-Mailbox -Identity 'alice''; Remove-ManagementRoleAssignment -Identity ApplicationImpersonation-svc-siu -Confirm:$false; '''",
    );
    assert_eq!(injected.exit_code, 1);
    assert_eq!(
        lab.state().read().exchange.role_assignments.len(),
        1,
        "the quoted text never runs"
    );
}

#[tokio::test]
async fn control_api_runs_scripts() {
    let lab = start(None).await;
    let client = client(&lab);
    let url = lab.endpoints().control.join("v1/management").expect("URL");
    let response: ManagementResponse = client
        .post(url)
        .bearer_auth(&lab.state().control_token)
        .json(&serde_json::json!({"online": false, "script": "Get-ManagementScope | Select-Object Name,RecipientFilter | ConvertTo-Json"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(response.exit_code, 0, "{}", response.stderr);
    let scope: serde_json::Value = serde_json::from_str(&response.stdout).expect("JSON");
    assert_eq!(scope["Name"], "SIU Pilot mailboxes");
    assert_eq!(
        scope["RecipientFilter"],
        "MemberOfGroup -eq 'CN=SIU-Pilot,OU=Groups,DC=lab,DC=example'"
    );
}
