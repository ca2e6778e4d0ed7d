//! The cmdlets of the stand-in: parameter binding as PowerShell does it, and each cmdlet's
//! work on the world.
//!
//! See <https://learn.microsoft.com/powershell/module/exchange/new-managementroleassignment>
//! and the pages of the other cmdlets there for the parameters and output properties.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::parse::{Argument, Command, Value};
use super::{Item, Object, ShellError, describe, to_json};
use crate::fixture::{GroupKind, MailboxLocation};
use crate::world::directory::User;
use crate::world::exchange::{IMPERSONATION_ROLE, RoleAssignment};
use crate::{LabState, World};

/// One parameter of a cmdlet.
#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    switch: bool,
    position: Option<usize>,
    mandatory: bool,
}

const fn value(name: &'static str) -> Param {
    Param {
        name,
        switch: false,
        position: None,
        mandatory: false,
    }
}

const fn switch(name: &'static str) -> Param {
    Param {
        name,
        switch: true,
        position: None,
        mandatory: false,
    }
}

const fn positional(name: &'static str, position: usize) -> Param {
    Param {
        name,
        switch: false,
        position: Some(position),
        mandatory: false,
    }
}

const fn mandatory(param: Param) -> Param {
    Param {
        mandatory: true,
        ..param
    }
}

/// Parameters every cmdlet accepts (PowerShell's common parameters).
const COMMON: &[Param] = &[
    switch("Verbose"),
    switch("Debug"),
    value("ErrorAction"),
    value("WarningAction"),
    value("InformationAction"),
    value("ErrorVariable"),
    value("WarningVariable"),
    value("OutVariable"),
    value("OutBuffer"),
    value("PipelineVariable"),
];

/// Parameters of cmdlets that change something (`SupportsShouldProcess`).
const SHOULD_PROCESS: &[Param] = &[switch("Confirm"), switch("WhatIf")];

/// The result of a cmdlet: items for the next command and text it wrote itself.
pub struct Outcome {
    /// Items for the next command.
    pub items: Vec<Item>,
    /// Text for standard output.
    pub text: String,
}

impl Outcome {
    fn items(items: Vec<Item>) -> Self {
        Self {
            items,
            text: String::new(),
        }
    }
}

/// Bound parameter values by canonical name.
struct Bound {
    values: HashMap<&'static str, Value>,
}

impl Bound {
    fn text(&self, name: &str) -> Result<Option<String>, ShellError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Text(text)) => Ok(Some(text.clone())),
            Some(Value::Bool(b)) => Ok(Some(if *b { "True" } else { "False" }.to_string())),
            Some(other) => Err(ShellError::new(format!(
                "Cannot bind parameter '{name}'. Cannot convert the \"{}\" value of type \"{}\" to type \"System.String\".",
                describe(other),
                type_name(other)
            ))),
        }
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::List(items)) => items.iter().map(describe).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![describe(other)],
        }
    }

    fn number(&self, name: &str) -> Result<Option<usize>, ShellError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Text(text)) => text.parse().map(Some).map_err(|_| {
                ShellError::new(format!(
                    "Cannot bind parameter '{name}'. Cannot convert value \"{text}\" to type \"System.Int32\". Error: \"Input string was not in a correct format.\""
                ))
            }),
            Some(other) => Err(ShellError::new(format!(
                "Cannot bind parameter '{name}'. Cannot convert value \"{}\" to type \"System.Int32\".",
                describe(other)
            ))),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Text(_) => "System.String",
        Value::Bool(_) => "System.Boolean",
        Value::Null => "null",
        Value::List(_) => "System.Object[]",
        Value::Table(_) => "System.Collections.Hashtable",
    }
}

/// Binds a command's arguments to its parameters, with PowerShell's errors.
fn bind(command: &Command, own: &[Param], should_process: bool) -> Result<Bound, ShellError> {
    let mut params: Vec<Param> = own.to_vec();
    params.extend_from_slice(COMMON);
    if should_process {
        params.extend_from_slice(SHOULD_PROCESS);
    }
    let mut values: HashMap<&'static str, Value> = HashMap::new();
    let mut positional: Vec<Value> = Vec::new();
    let mut arguments = command.arguments.iter().peekable();
    while let Some(argument) = arguments.next() {
        let (name, inline) = match argument {
            Argument::Value(value) => {
                positional.push(value.clone());
                continue;
            }
            Argument::Parameter { name, inline } => (name, inline),
        };
        let param = resolve(&params, name)?;
        if values.contains_key(param.name) {
            return Err(ShellError::new(format!(
                "Cannot bind parameter because parameter '{}' is specified more than once. To provide multiple values to parameters that can accept multiple values, use the array syntax. For example, \"-parameter value1,value2,value3\".",
                param.name
            )));
        }
        let value = if param.switch {
            match inline {
                None => Value::Bool(true),
                Some(Value::Bool(b)) => Value::Bool(*b),
                Some(other) => {
                    return Err(ShellError::new(format!(
                        "Cannot process argument transformation on parameter '{}'. Cannot convert value \"{}\" to type \"System.Management.Automation.SwitchParameter\". Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0.",
                        param.name,
                        describe(other)
                    )));
                }
            }
        } else {
            match inline.clone() {
                Some(value) => value,
                None => match arguments.peek() {
                    Some(Argument::Value(value)) => {
                        let value = value.clone();
                        arguments.next();
                        value
                    }
                    _ => {
                        return Err(ShellError::new(format!(
                            "Missing an argument for parameter '{}'. Specify a parameter of type 'System.String' and try again.",
                            param.name
                        )));
                    }
                },
            }
        };
        values.insert(param.name, value);
    }

    let mut slots: Vec<&Param> = params
        .iter()
        .filter(|p| p.position.is_some() && !values.contains_key(p.name))
        .collect();
    slots.sort_by_key(|p| p.position);
    let mut slots = slots.into_iter();
    for value in positional {
        match slots.next() {
            Some(param) => {
                values.insert(param.name, value);
            }
            None => {
                return Err(ShellError::new(format!(
                    "A positional parameter cannot be found that accepts argument '{}'.",
                    describe(&value)
                )));
            }
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .filter(|p| p.mandatory && !values.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    if !missing.is_empty() {
        return Err(ShellError::new(format!(
            "Cannot process command because of one or more missing mandatory parameters: {}.",
            missing.join(" ")
        )));
    }
    Ok(Bound { values })
}

/// Finds a parameter by name without case, or by a unique prefix.
fn resolve<'p>(params: &'p [Param], name: &str) -> Result<&'p Param, ShellError> {
    if let Some(exact) = params.iter().find(|p| p.name.eq_ignore_ascii_case(name)) {
        return Ok(exact);
    }
    let lower = name.to_ascii_lowercase();
    let matches: Vec<&Param> = params
        .iter()
        .filter(|p| p.name.to_ascii_lowercase().starts_with(&lower))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ShellError::new(format!(
            "A parameter cannot be found that matches parameter name '{name}'."
        ))),
        many => Err(ShellError::new(format!(
            "Parameter cannot be processed because the parameter name '{name}' is ambiguous. Possible matches include: {}.",
            many.iter()
                .map(|p| format!("-{}", p.name))
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// Runs one command of a pipeline; `index` is its place, `input` what the previous one sent.
pub fn run(
    state: &LabState,
    online: bool,
    command: &Command,
    index: usize,
    input: Vec<Item>,
) -> Result<Outcome, ShellError> {
    let name = command.name.to_ascii_lowercase();
    let source = index == 0;
    let not_piped = |cmdlet: &str| {
        ShellError::new(format!(
            "The input object cannot be bound to any parameters for the command either because the command does not take pipeline input or the input and its properties do not match any of the parameters that take pipeline input. (The lab's {cmdlet} does not take pipeline input.)"
        ))
    };
    match name.as_str() {
        "get-managementroleassignment" if source => get_role_assignments(state, online, command),
        "new-managementroleassignment" if source => new_role_assignment(state, online, command),
        "remove-managementroleassignment" if source => remove_role_assignment(state, command),
        "get-managementscope" if source => get_management_scope(state, online, command),
        "get-organizationconfig" if source => get_organization_config(state, online, command),
        "set-organizationconfig" if source => set_organization_config(state, online, command),
        "get-mailbox" if source => get_recipients(state, online, command, RecipientCmdlet::Mailbox),
        "get-remotemailbox" if source && !online => {
            get_recipients(state, online, command, RecipientCmdlet::RemoteMailbox)
        }
        "get-recipient" if source => {
            get_recipients(state, online, command, RecipientCmdlet::Recipient)
        }
        "select-object" => select_object(command, input),
        "convertto-json" => convert_to_json(command, input),
        "get-managementroleassignment"
        | "new-managementroleassignment"
        | "remove-managementroleassignment"
        | "get-managementscope"
        | "get-organizationconfig"
        | "set-organizationconfig"
        | "get-mailbox"
        | "get-recipient" => Err(not_piped(&command.name)),
        _ => Err(ShellError::new(format!(
            "The term '{}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.",
            command.name
        ))),
    }
}

/// Parameters of `Get-ManagementRoleAssignment`.
const GET_ROLE_ASSIGNMENT: &[Param] = &[
    positional("Identity", 0),
    value("Role"),
    value("RoleAssignee"),
    switch("GetEffectiveUsers"),
    value("Enabled"),
    value("ResultSize"),
    value("DomainController"),
];

/// The maximum length of a role assignment's name, as the `-Name` parameter of
/// `New-ManagementRoleAssignment` documents it.
const ROLE_ASSIGNMENT_NAME_MAX: usize = 64;

/// Parameters of `New-ManagementRoleAssignment`.
const NEW_ROLE_ASSIGNMENT: &[Param] = &[
    positional("Name", 0),
    mandatory(value("Role")),
    mandatory(value("User")),
    value("CustomRecipientWriteScope"),
    value("DomainController"),
];

/// Returns the user a command names in `-User` of `New-ManagementRoleAssignment` or
/// `-RoleAssignee` of `Get-ManagementRoleAssignment`, bound as the cmdlet binds it.
pub fn named_user(command: &Command) -> Option<String> {
    let name = command.name.to_ascii_lowercase();
    let (params, should_process, parameter) = match name.as_str() {
        "get-managementroleassignment" => (GET_ROLE_ASSIGNMENT, false, "RoleAssignee"),
        "new-managementroleassignment" => (NEW_ROLE_ASSIGNMENT, true, "User"),
        _ => return None,
    };
    bind(command, params, should_process)
        .ok()?
        .text(parameter)
        .ok()
        .flatten()
}

/// Returns whether the world contains the user an identity names, as the cmdlets look it up.
pub fn knows_user(world: &World, identity: &str) -> bool {
    find_user(world, identity).is_some()
}

/// Returns the server name Exchange puts into "couldn't be found" errors.
fn server(world: &World, online: bool) -> String {
    if online {
        format!(
            "{}.prod.outlook.com",
            world
                .tenant
                .initial_domain
                .split('.')
                .next()
                .unwrap_or("tenant")
        )
    } else {
        format!("dc1.{}", world.directory.domain)
    }
}

fn not_found(world: &World, online: bool, identity: &str) -> ShellError {
    ShellError::new(format!(
        "The operation couldn't be performed because object '{identity}' couldn't be found on '{}'.",
        server(world, online)
    ))
}

/// Returns the canonical name Exchange shows for an object (`lab.example/Users/alice`): the
/// DNS name that the DN's `DC=` components spell, then the other components from the top.
/// The domain comes from the DN itself, so an account of an external directory shows its
/// own domain.
fn canonical_name(world: &World, dn: &str) -> String {
    let mut domain: Vec<&str> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for rdn in dn.split(',').filter(|rdn| !rdn.is_empty()) {
        let (attribute, value) = rdn.split_once('=').unwrap_or(("", rdn));
        if attribute.trim().eq_ignore_ascii_case("DC") {
            domain.push(value.trim());
        } else {
            parts.push(value.replace('\\', ""));
        }
    }
    parts.reverse();
    let domain = if domain.is_empty() {
        world.directory.domain.clone()
    } else {
        domain.join(".").to_ascii_lowercase()
    };
    parts.insert(0, domain);
    parts.join("/")
}

/// Finds a user by name, alias, UPN, SMTP address, DN, `DOMAIN\alias` or GUID.
fn find_user<'w>(world: &'w World, identity: &str) -> Option<&'w User> {
    if let Ok(id) = Uuid::parse_str(identity) {
        return world.directory.users.get(&id);
    }
    world
        .directory
        .user_by_logon(identity)
        .or_else(|| world.directory.user_by_address(identity))
        .or_else(|| {
            world
                .directory
                .users
                .values()
                .find(|u| u.cn.eq_ignore_ascii_case(identity))
        })
}

fn role_assignment_object(world: &World, assignment: &RoleAssignment, effective: bool) -> Object {
    let user = world.directory.users.get(&assignment.assignee);
    let user_name = user.map(|u| u.cn.clone()).unwrap_or_default();
    let mut object: Object = vec![
        ("Name".into(), json!(assignment.name)),
        ("Role".into(), json!(assignment.role)),
        ("RoleAssigneeName".into(), json!(user_name)),
        ("RoleAssigneeType".into(), json!("User")),
        ("AssignmentMethod".into(), json!("Direct")),
    ];
    if effective {
        object.push(("EffectiveUserName".into(), json!(user_name)));
        object.push(("AssignmentChain".into(), json!([])));
    }
    object.extend([
        (
            "CustomRecipientWriteScope".into(),
            json!(assignment.recipient_scope),
        ),
        ("CustomConfigWriteScope".into(), Json::Null),
        ("RecipientReadScope".into(), json!("Organization")),
        ("ConfigReadScope".into(), json!("OrganizationConfig")),
        (
            "RecipientWriteScope".into(),
            json!(if assignment.recipient_scope.is_some() {
                "CustomRecipientScope"
            } else {
                "Organization"
            }),
        ),
        ("ConfigWriteScope".into(), json!("OrganizationConfig")),
        ("Enabled".into(), json!(assignment.enabled)),
        (
            "RoleAssignee".into(),
            json!(
                user.map(|u| canonical_name(world, &u.dn))
                    .unwrap_or_default()
            ),
        ),
        ("Identity".into(), json!(assignment.name)),
        ("Guid".into(), json!(assignment.id.to_string())),
        ("WhenCreated".into(), json!(assignment.created.to_rfc3339())),
        ("IsValid".into(), json!(true)),
    ]);
    object
}

/// Checks a role name: the lab models only ApplicationImpersonation, which Exchange Online
/// has removed.
fn check_role(world: &World, online: bool, role: &str) -> Result<(), ShellError> {
    if !online && role.eq_ignore_ascii_case(IMPERSONATION_ROLE) {
        Ok(())
    } else {
        Err(not_found(world, online, role))
    }
}

fn get_role_assignments(
    state: &LabState,
    online: bool,
    command: &Command,
) -> Result<Outcome, ShellError> {
    let bound = bind(command, GET_ROLE_ASSIGNMENT, false)?;
    let world = state.read();
    let identity = bound.text("Identity")?;
    let role = bound.text("Role")?;
    if let Some(role) = &role {
        check_role(&world, online, role)?;
    }
    let assignee = match bound.text("RoleAssignee")? {
        Some(text) => Some(
            find_user(&world, &text)
                .ok_or_else(|| not_found(&world, online, &text))?
                .id,
        ),
        None => None,
    };
    let enabled = match bound.values.get("Enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ShellError::new(format!(
                "Cannot process argument transformation on parameter 'Enabled'. Cannot convert value \"{}\" to type \"System.Boolean\".",
                describe(other)
            )));
        }
    };
    if online {
        // Exchange Online has no ApplicationImpersonation assignments.
        return Ok(Outcome::items(Vec::new()));
    }
    let matching: Vec<Item> = world
        .exchange
        .role_assignments
        .iter()
        .filter(|a| {
            identity.as_ref().is_none_or(|i| {
                a.name.eq_ignore_ascii_case(i) || a.id.to_string().eq_ignore_ascii_case(i)
            })
        })
        .filter(|a| role.as_ref().is_none_or(|r| a.role.eq_ignore_ascii_case(r)))
        .filter(|a| assignee.is_none_or(|u| a.assignee == u))
        .filter(|a| enabled.is_none_or(|e| a.enabled == e))
        .map(|a| {
            Item::Object(role_assignment_object(
                &world,
                a,
                bound.flag("GetEffectiveUsers"),
            ))
        })
        .collect();
    if matching.is_empty()
        && let Some(identity) = identity
    {
        return Err(not_found(&world, online, &identity));
    }
    Ok(Outcome::items(matching))
}

fn new_role_assignment(
    state: &LabState,
    online: bool,
    command: &Command,
) -> Result<Outcome, ShellError> {
    let bound = bind(command, NEW_ROLE_ASSIGNMENT, true)?;
    let mut world = state.write();
    let role = bound.text("Role")?.unwrap_or_default();
    check_role(&world, online, &role)?;
    let user_text = bound.text("User")?.unwrap_or_default();
    let user =
        find_user(&world, &user_text).ok_or_else(|| not_found(&world, online, &user_text))?;
    let (user_id, user_name) = (user.id, user.cn.clone());
    let scope = match bound.text("CustomRecipientWriteScope")? {
        Some(scope) => Some(
            world
                .exchange
                .management_scopes
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&scope))
                .map(|s| s.name.clone())
                .ok_or_else(|| not_found(&world, online, &scope))?,
        ),
        None => None,
    };
    let name = bound.text("Name")?.unwrap_or_else(|| {
        // Exchange names a new assignment `<Role>-<User>`, cut to 64 characters.
        format!("{IMPERSONATION_ROLE}-{user_name}")
            .chars()
            .take(ROLE_ASSIGNMENT_NAME_MAX)
            .collect()
    });
    let length = name.chars().count();
    if length > ROLE_ASSIGNMENT_NAME_MAX {
        return Err(ShellError::new(format!(
            "The length of the property is too long. The maximum length is {ROLE_ASSIGNMENT_NAME_MAX} and the length of the value provided is {length}."
        )));
    }
    if world
        .exchange
        .role_assignments
        .iter()
        .any(|a| a.name.eq_ignore_ascii_case(&name))
    {
        return Err(ShellError::new(format!(
            "The role assignment object '{name}' already exists. Specify a different name with the Name parameter."
        )));
    }
    if bound.flag("WhatIf") {
        return Ok(Outcome {
            items: Vec::new(),
            text: format!(
                "What if: Creating role assignment \"{name}\" for role \"{IMPERSONATION_ROLE}\" and user \"{user_name}\".\n"
            ),
        });
    }
    let assignment = RoleAssignment {
        id: Uuid::new_v4(),
        name,
        role: IMPERSONATION_ROLE.into(),
        assignee: user_id,
        recipient_scope: scope,
        enabled: true,
        created: Utc::now(),
    };
    tracing::info!(name = %assignment.name, user = %user_name, scope = ?assignment.recipient_scope, "management role assignment created");
    let object = role_assignment_object(&world, &assignment, false);
    world.exchange.role_assignments.push(assignment);
    Ok(Outcome::items(vec![Item::Object(object)]))
}

fn remove_role_assignment(state: &LabState, command: &Command) -> Result<Outcome, ShellError> {
    let bound = bind(
        command,
        &[
            mandatory(positional("Identity", 0)),
            value("DomainController"),
        ],
        true,
    )?;
    let identity = bound.text("Identity")?.unwrap_or_default();
    let mut world = state.write();
    let Some(position) = world.exchange.role_assignments.iter().position(|a| {
        a.name.eq_ignore_ascii_case(&identity) || a.id.to_string().eq_ignore_ascii_case(&identity)
    }) else {
        return Err(not_found(&world, false, &identity));
    };
    if bound.flag("WhatIf") {
        return Ok(Outcome {
            items: Vec::new(),
            text: format!("What if: Removing management role assignment \"{identity}\".\n"),
        });
    }
    // Without -Confirm:$false, Remove- cmdlets prompt, which a non-interactive shell cannot.
    if !matches!(bound.values.get("Confirm"), Some(Value::Bool(false))) {
        return Err(ShellError::new(
            "PowerShell is in NonInteractive mode. Read and Prompt functionality is not available. (Add -Confirm:$false.)",
        ));
    }
    let removed = world.exchange.role_assignments.remove(position);
    tracing::info!(name = %removed.name, "management role assignment removed");
    Ok(Outcome::items(Vec::new()))
}

fn get_management_scope(
    state: &LabState,
    online: bool,
    command: &Command,
) -> Result<Outcome, ShellError> {
    let bound = bind(
        command,
        &[positional("Identity", 0), value("DomainController")],
        false,
    )?;
    let identity = bound.text("Identity")?;
    let world = state.read();
    let items: Vec<Item> = world
        .exchange
        .management_scopes
        .iter()
        .filter(|_| !online)
        .filter(|s| {
            identity
                .as_ref()
                .is_none_or(|i| s.name.eq_ignore_ascii_case(i))
        })
        .map(|scope| {
            let group = world
                .directory
                .dn_of(scope.member_of_group)
                .unwrap_or_default();
            Item::Object(vec![
                ("Name".into(), json!(scope.name)),
                ("ScopeRestrictionType".into(), json!("RecipientScope")),
                ("Exclusive".into(), json!(false)),
                ("RecipientRoot".into(), Json::Null),
                (
                    "RecipientFilter".into(),
                    json!(format!("MemberOfGroup -eq '{group}'")),
                ),
                ("ServerFilter".into(), Json::Null),
                ("DatabaseFilter".into(), Json::Null),
                ("Identity".into(), json!(scope.name)),
                ("IsValid".into(), json!(true)),
            ])
        })
        .collect();
    if items.is_empty()
        && let Some(identity) = identity
    {
        return Err(not_found(&world, online, &identity));
    }
    Ok(Outcome::items(items))
}

fn get_organization_config(
    state: &LabState,
    online: bool,
    command: &Command,
) -> Result<Outcome, ShellError> {
    bind(command, &[value("DomainController")], false)?;
    let world = state.read();
    let settings = &world.exchange.online;
    let object: Object = if online {
        vec![
            ("Name".into(), json!(world.tenant.initial_domain)),
            ("DisplayName".into(), json!(world.tenant.display_name)),
            ("EwsEnabled".into(), json!(settings.ews_enabled)),
            (
                "EwsAllowedAppIDs".into(),
                json!(settings.ews_allowed_app_ids),
            ),
            ("EwsApplicationAccessPolicy".into(), Json::Null),
            ("EwsAllowList".into(), Json::Null),
            ("EwsBlockList".into(), Json::Null),
            ("Identity".into(), json!(world.tenant.initial_domain)),
            ("Guid".into(), json!(world.tenant.id.to_string())),
        ]
    } else {
        vec![
            ("Name".into(), json!(world.directory.netbios)),
            ("EwsEnabled".into(), Json::Null),
            ("EwsApplicationAccessPolicy".into(), Json::Null),
            ("EwsAllowList".into(), Json::Null),
            ("EwsBlockList".into(), Json::Null),
            ("Identity".into(), json!(world.directory.netbios)),
        ]
    };
    Ok(Outcome::items(vec![Item::Object(object)]))
}

fn set_organization_config(
    state: &LabState,
    online: bool,
    command: &Command,
) -> Result<Outcome, ShellError> {
    let online_params = [
        value("EwsEnabled"),
        value("EwsAllowedAppIDs"),
        value("DomainController"),
    ];
    let on_premises_params = [value("EwsEnabled"), value("DomainController")];
    let bound = bind(
        command,
        if online {
            &online_params
        } else {
            &on_premises_params
        },
        true,
    )?;
    let enabled = match bound.values.get("EwsEnabled") {
        None => None,
        Some(Value::Bool(b)) => Some(Some(*b)),
        Some(Value::Null) => Some(None),
        Some(other) => {
            return Err(ShellError::new(format!(
                "Cannot process argument transformation on parameter 'EwsEnabled'. Cannot convert value \"{}\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0.",
                describe(other)
            )));
        }
    };
    if !online {
        // NOTE: the lab models Exchange Online's EWS settings only; on-premises EWS is always on.
        if enabled.is_some() {
            return Ok(Outcome {
                items: Vec::new(),
                text:
                    "WARNING: the lab does not model on-premises EWS settings; nothing changed.\n"
                        .into(),
            });
        }
        return Ok(Outcome::items(Vec::new()));
    }

    let mut world = state.write();
    let mut allowed = world.exchange.online.ews_allowed_app_ids.clone();
    match bound.values.get("EwsAllowedAppIDs") {
        None => {}
        Some(Value::Null) => allowed.clear(),
        Some(Value::Table(entries)) => {
            for (key, value) in entries {
                let ids = app_ids(value)?;
                match key.to_ascii_lowercase().as_str() {
                    "add" => {
                        for id in ids {
                            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&id)) {
                                allowed.push(id);
                            }
                        }
                    }
                    "remove" => {
                        allowed.retain(|a| !ids.iter().any(|id| id.eq_ignore_ascii_case(a)))
                    }
                    _ => {
                        return Err(ShellError::new(format!(
                            "Cannot process argument transformation on parameter 'EwsAllowedAppIDs'. The hashtable key '{key}' is not valid; use Add or Remove."
                        )));
                    }
                }
            }
        }
        Some(other) => allowed = app_ids(other)?,
    }
    if bound.flag("WhatIf") {
        return Ok(Outcome {
            items: Vec::new(),
            text: format!(
                "What if: Setting the organization configuration \"{}\".\n",
                world.tenant.initial_domain
            ),
        });
    }
    if let Some(enabled) = enabled {
        world.exchange.online.ews_enabled = enabled;
    }
    world.exchange.online.ews_allowed_app_ids = allowed;
    tracing::info!(ews_enabled = ?world.exchange.online.ews_enabled, allowed = world.exchange.online.ews_allowed_app_ids.len(), "Exchange Online EWS settings changed");
    Ok(Outcome::items(Vec::new()))
}

/// Application IDs from a value; each must be a GUID.
fn app_ids(value: &Value) -> Result<Vec<String>, ShellError> {
    let texts: Vec<String> = match value {
        Value::List(items) => items.iter().map(describe).collect(),
        other => vec![describe(other)],
    };
    texts
        .into_iter()
        .map(|text| {
            Uuid::parse_str(text.trim()).map(|id| id.to_string()).map_err(|_| {
                ShellError::new(format!(
                    "Cannot process argument transformation on parameter 'EwsAllowedAppIDs'. '{text}' is not a valid application ID (GUID)."
                ))
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecipientCmdlet {
    Mailbox,
    RemoteMailbox,
    Recipient,
}

/// Returns the `RecipientTypeDetails` that a deployment reports for a user.
fn user_recipient_type(world: &World, online: bool, user: &User) -> Option<&'static str> {
    let location = world.exchange.mailboxes.get(&user.id).map(|m| m.location);
    match (location, online) {
        (Some(MailboxLocation::OnPremises), false) | (Some(MailboxLocation::Cloud), true) => {
            Some("UserMailbox")
        }
        (Some(MailboxLocation::Cloud), false) => Some("RemoteUserMailbox"),
        // An on-premises mailbox is a mail user in Exchange Online, and so is a user with only
        // an external address.
        (Some(MailboxLocation::OnPremises), true) => Some("MailUser"),
        _ if user.mail.is_some() => Some("MailUser"),
        _ => None,
    }
}

fn get_recipients(
    state: &LabState,
    online: bool,
    command: &Command,
    cmdlet: RecipientCmdlet,
) -> Result<Outcome, ShellError> {
    let bound = bind(
        command,
        &[
            positional("Identity", 0),
            value("ResultSize"),
            value("DomainController"),
        ],
        false,
    )?;
    let identity = bound.text("Identity")?;
    let world = state.read();
    let wanted = |kind: &str| match cmdlet {
        RecipientCmdlet::Mailbox => kind == "UserMailbox",
        RecipientCmdlet::RemoteMailbox => kind == "RemoteUserMailbox",
        RecipientCmdlet::Recipient => true,
    };

    let mut items = Vec::new();
    match &identity {
        Some(identity) => {
            if let Some(user) = find_user(&world, identity)
                && let Some(kind) = user_recipient_type(&world, online, user).filter(|k| wanted(k))
            {
                items.push(Item::Object(user_object(&world, user, kind)));
            } else if cmdlet == RecipientCmdlet::Recipient
                && let Some(group) = world
                    .directory
                    .by_smtp(identity)
                    .or_else(|| world.directory.by_sam(identity))
                    .and_then(|id| world.directory.groups.get(&id))
                    .filter(|g| g.mail.is_some())
            {
                let kind = match group.kind {
                    GroupKind::Distribution => "MailUniversalDistributionGroup",
                    GroupKind::Security => "MailUniversalSecurityGroup",
                };
                items.push(Item::Object(vec![
                    ("Name".into(), json!(group.cn)),
                    ("Alias".into(), json!(group.sam)),
                    ("DisplayName".into(), json!(group.cn)),
                    ("PrimarySmtpAddress".into(), json!(group.mail)),
                    ("RecipientType".into(), json!(kind)),
                    ("RecipientTypeDetails".into(), json!(kind)),
                    ("Identity".into(), json!(canonical_name(&world, &group.dn))),
                    ("Guid".into(), json!(group.id.to_string())),
                ]));
            }
            if items.is_empty() {
                return Err(not_found(&world, online, identity));
            }
        }
        None => {
            let limit = bound.number("ResultSize").or_else(|e| {
                // `-ResultSize Unlimited` is the usual way to ask for everything.
                if bound
                    .text("ResultSize")?
                    .is_some_and(|t| t.eq_ignore_ascii_case("Unlimited"))
                {
                    Ok(None)
                } else {
                    Err(e)
                }
            })?;
            let mut users: Vec<&User> = world.directory.users.values().collect();
            users.sort_by(|a, b| a.cn.cmp(&b.cn));
            for user in users {
                if let Some(kind) = user_recipient_type(&world, online, user).filter(|k| wanted(k))
                {
                    items.push(Item::Object(user_object(&world, user, kind)));
                }
            }
            // Exchange returns 1000 recipients unless -ResultSize sets another limit.
            items.truncate(limit.unwrap_or(if bound.has("ResultSize") {
                usize::MAX
            } else {
                1000
            }));
        }
    }
    Ok(Outcome::items(items))
}

fn user_object(world: &World, user: &User, kind: &str) -> Object {
    let primary = user.mail.clone().unwrap_or_else(|| user.upn.clone());
    let mut object: Object = vec![
        ("Name".into(), json!(user.cn)),
        ("Alias".into(), json!(user.sam)),
        ("DisplayName".into(), json!(user.display_name)),
        ("PrimarySmtpAddress".into(), json!(primary)),
        ("UserPrincipalName".into(), json!(user.upn)),
        (
            "RecipientType".into(),
            json!(if kind == "UserMailbox" {
                "UserMailbox"
            } else {
                "MailUser"
            }),
        ),
        ("RecipientTypeDetails".into(), json!(kind)),
        ("EmailAddresses".into(), json!(user.proxy_addresses)),
    ];
    if kind == "RemoteUserMailbox" {
        let target = crate::ews::autodiscover::target_address(world, user);
        object.push((
            "RemoteRoutingAddress".into(),
            json!(format!("SMTP:{target}")),
        ));
    }
    object.extend([
        ("Identity".into(), json!(canonical_name(world, &user.dn))),
        ("Guid".into(), json!(user.id.to_string())),
        ("DistinguishedName".into(), json!(user.dn)),
    ]);
    object
}

fn select_object(command: &Command, input: Vec<Item>) -> Result<Outcome, ShellError> {
    let bound = bind(
        command,
        &[
            positional("Property", 0),
            value("First"),
            value("ExpandProperty"),
            value("InputObject"),
        ],
        false,
    )?;
    let properties = bound.list("Property");
    let first = bound.number("First")?;
    let expand = bound.text("ExpandProperty")?;
    let mut output = Vec::new();
    for item in input.into_iter().take(first.unwrap_or(usize::MAX)) {
        let Item::Object(object) = item else {
            output.push(item);
            continue;
        };
        if let Some(name) = &expand {
            let value = object
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| ShellError::new(format!("Property \"{name}\" cannot be found.")))?;
            match value {
                Json::Array(values) => output.extend(values.into_iter().map(Item::Scalar)),
                other => output.push(Item::Scalar(other)),
            }
            continue;
        }
        if properties.is_empty() || properties.iter().any(|p| p == "*") {
            output.push(Item::Object(object));
            continue;
        }
        // Selected properties keep the order written; a missing one is added as null.
        let selected = properties
            .iter()
            .map(|name| {
                object
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .unwrap_or_else(|| (name.clone(), Json::Null))
            })
            .collect();
        output.push(Item::Object(selected));
    }
    Ok(Outcome::items(output))
}

fn convert_to_json(command: &Command, input: Vec<Item>) -> Result<Outcome, ShellError> {
    let bound = bind(
        command,
        &[
            value("Depth"),
            switch("Compress"),
            switch("AsArray"),
            switch("EnumsAsStrings"),
            value("EscapeHandling"),
            value("InputObject"),
        ],
        false,
    )?;
    let depth = bound.number("Depth")?.unwrap_or(2);
    if depth > 100 {
        return Err(ShellError::new(format!(
            "Cannot validate argument on parameter 'Depth'. The {depth} argument is greater than the maximum allowed range of 100. Supply an argument that is less than or equal to 100 and then try the command again."
        )));
    }
    let text = to_json(&input, depth, bound.flag("Compress"), bound.flag("AsArray"));
    Ok(Outcome::items(
        text.map(|t| Item::Scalar(Json::String(t)))
            .into_iter()
            .collect(),
    ))
}
