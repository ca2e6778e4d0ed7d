<#
.SYNOPSIS
Runs the Exchange cmdlets that siuctl writes to standard input in a remote Exchange
Management Shell session on an on-premises Exchange server.

.DESCRIPTION
siuctl starts this script as its managementShell.command, for example:

    onPremises:
      exchange:
        managementShell:
          command: [pwsh, -NoProfile, -NonInteractive, -File, exchange-onprem-shell.ps1,
                    -Server, mail.lab.example]

The session authenticates with Kerberos as the account that runs siuctl, so no password
appears in the spec, in this script or in the cmdlets siuctl sends. That account needs the
Exchange role that the cmdlets require (Organization Management, or a role group with
"Role Management" for New-ManagementRoleAssignment).

The cmdlets run locally through Import-PSSession, so that Select-Object and ConvertTo-Json,
which the remote Exchange endpoint does not offer, work on their output. Standard output
carries only the JSON; errors go to standard error with exit code 1.
#>
param(
    # The Exchange server that serves the remote PowerShell endpoint.
    [Parameter(Mandatory)] [string] $Server
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script = [Console]::In.ReadToEnd()

$session = $null
try {
    $session = New-PSSession -ConfigurationName Microsoft.Exchange `
        -ConnectionUri "http://$Server/PowerShell/" -Authentication Kerberos
    Import-PSSession $session -DisableNameChecking -AllowClobber `
        -WarningAction SilentlyContinue | Out-Null
    . ([scriptblock]::Create($script))
}
catch {
    [Console]::Error.WriteLine($_.ToString())
    exit 1
}
finally {
    if ($session) { Remove-PSSession $session }
}
