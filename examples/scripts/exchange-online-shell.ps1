<#
.SYNOPSIS
Runs the Exchange cmdlets that siuctl writes to standard input in an Exchange Online
PowerShell session that signs in as an application with a certificate.

.DESCRIPTION
siuctl starts this script as its Exchange Online shell command, for example:

    appRegistration:
      exchangeOnlineShell:
        command: [pwsh, -NoProfile, -NonInteractive, -File, exchange-online-shell.ps1,
                  -AppId, 11111111-2222-3333-4444-555555555555,
                  -CertificateThumbprint, 0123456789ABCDEF0123456789ABCDEF01234567,
                  -Organization, contoso.onmicrosoft.com]

The application needs the Exchange.ManageAsApp permission and an Exchange role such as
Exchange Administrator. Connect-ExchangeOnline finds the certificate by thumbprint in the
current user's certificate store on Windows; elsewhere, replace -CertificateThumbprint with
-CertificateFilePath and a PFX file. No password or secret is passed on the command line.

Requires the ExchangeOnlineManagement module (Install-Module ExchangeOnlineManagement).
Standard output carries only the JSON; errors go to standard error with exit code 1.
#>
param(
    # The application (client) ID.
    [Parameter(Mandatory)] [string] $AppId,
    # The SHA-1 thumbprint of the application's certificate.
    [Parameter(Mandatory)] [string] $CertificateThumbprint,
    # The tenant's initial domain, such as contoso.onmicrosoft.com.
    [Parameter(Mandatory)] [string] $Organization
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script = [Console]::In.ReadToEnd()

$connected = $false
try {
    Import-Module ExchangeOnlineManagement -WarningAction SilentlyContinue
    Connect-ExchangeOnline -AppId $AppId -CertificateThumbprint $CertificateThumbprint `
        -Organization $Organization -ShowBanner:$false
    $connected = $true
    . ([scriptblock]::Create($script))
}
catch {
    [Console]::Error.WriteLine($_.ToString())
    exit 1
}
finally {
    if ($connected) { Disconnect-ExchangeOnline -Confirm:$false }
}
