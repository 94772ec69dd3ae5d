# The Windows form of every azd hook in azure.yaml: runs `scripts/azd_hooks.py HOOK` with Python 3.9 or newer (the
# py launcher, python3 or python; the Microsoft Store's python3 placeholder fails the version check and is skipped).
param(
    [Parameter(Mandatory = $true)]
    [string] $Hook,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]] $Rest = @()
)
$script = Join-Path $PSScriptRoot 'azd_hooks.py'
$candidates = @(@('py', '-3'), @('python3'), @('python'))
foreach ($candidate in $candidates) {
    $command = Get-Command $candidate[0] -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($null -eq $command) {
        continue
    }
    $prefix = @($candidate | Select-Object -Skip 1)
    & $command.Source @prefix -c 'import sys; sys.exit(sys.version_info < (3, 9))' *> $null
    if ($LASTEXITCODE -ne 0) {
        continue
    }
    & $command.Source @prefix $script $Hook @Rest
    exit $LASTEXITCODE
}
[Console]::Error.WriteLine("azd hook ${Hook}: Python 3.9 or newer is needed on PATH (py, python3 or python); see docs/DEPLOYMENT.md, Deploy with azd")
exit 1
