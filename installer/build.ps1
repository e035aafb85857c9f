# Build the station on Windows: the one-folder bundle (dist\station\) and, with -Installer, the
# Inno Setup installer (dist\station-VERSION-setup.exe). The Windows twin of installer/build.sh.
#
#   powershell -ExecutionPolicy Bypass -File installer\build.ps1 [-Smoke] [-Installer]
#
# -Smoke     run the frozen `station --self-test --self-test-port sim`; fail on a non-zero exit
#            or on any output line that is not a self-test line
# -Installer compile installer\station.iss with Inno Setup 6 (iscc on PATH or its usual folders)
#
# Python: build\venv is created with the `py` launcher (Python 3.11) if it does not exist.
param([switch]$Smoke, [switch]$Installer)

$ErrorActionPreference = "Stop"
$PyInstallerVersion = "6.22.3"
$HooksContribVersion = "2026.9"
$LinePattern = '^(ok  |FAIL|skip) [a-z0-9-]+(: .*)?$'   # the same as station.selftest.LINE_RE

$Root = Resolve-Path (Join-Path $PSScriptRoot "..")
Set-Location $Root

function Invoke-Checked([string]$What, [scriptblock]$Block) {
    & $Block
    if ($LASTEXITCODE -ne 0) { throw "build.ps1: $What failed (exit code $LASTEXITCODE)" }
}

$Py = Join-Path $Root "build\venv\Scripts\python.exe"
if (-not (Test-Path $Py)) {
    Write-Host "build.ps1: creating build\venv"
    Invoke-Checked "creating the venv" { py -3.11 -m venv build\venv }
    Invoke-Checked "pip upgrade" { & $Py -m pip install -q --upgrade pip }
}
Invoke-Checked "installing station[gui,postgres]" { & $Py -m pip install -q -e ".[gui,postgres]" }
Invoke-Checked "installing PyInstaller" {
    & $Py -m pip install -q "pyinstaller==$PyInstallerVersion" "pyinstaller-hooks-contrib==$HooksContribVersion"
}

$Started = Get-Date
Invoke-Checked "PyInstaller" {
    & $Py -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist `
        --workpath build\pyinstaller installer\station.spec
}
Write-Host ("build.ps1: built dist\station in {0:N0} s" -f ((Get-Date) - $Started).TotalSeconds)

$Exe = Join-Path $Root "dist\station\station.exe"
$Files = Get-ChildItem dist\station -Recurse -File
Write-Host ("build.ps1: bundle size {0:N0} MB ({1} files)" -f (($Files | Measure-Object Length -Sum).Sum / 1MB), $Files.Count)

$Runs = 1..3 | ForEach-Object {
    (Measure-Command { & $Exe --self-test *> $null }).TotalSeconds
}
Write-Host ("build.ps1: ``station --self-test`` frozen: runs {0}" -f (($Runs | ForEach-Object { "{0:N2} s" -f $_ }) -join ", "))

if ($Smoke) {
    Write-Host "build.ps1: smoke test: dist\station\station.exe --self-test --self-test-port sim"
    # Windows PowerShell turns a native program's stderr lines into errors under "Stop"; here
    # they are output to be judged like any other line
    $ErrorActionPreference = "Continue"
    $Output = & $Exe --self-test --self-test-port sim 2>&1 | ForEach-Object { "$_" }
    $Code = $LASTEXITCODE
    $ErrorActionPreference = "Stop"
    $Output | ForEach-Object { Write-Host $_ }
    $Unexpected = @($Output | Where-Object { $_ -cnotmatch $LinePattern })
    if ($Code -ne 0) { throw "build.ps1: smoke test FAILED: the frozen self-test exited with $Code" }
    if ($Unexpected.Count -ne 0) {
        throw "build.ps1: smoke test FAILED: $($Unexpected.Count) line(s) of unexpected output"
    }
    Write-Host "build.ps1: smoke test passed"
}

if ($Installer) {
    $Iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
    foreach ($Candidate in @(
        "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe",
        "$env:ProgramFiles\Inno Setup 6\ISCC.exe",
        "$env:LOCALAPPDATA\Programs\Inno Setup 6\ISCC.exe")) {
        if (-not $Iscc -and (Test-Path $Candidate)) { $Iscc = $Candidate }
    }
    if (-not $Iscc) { throw "build.ps1: Inno Setup 6 not found (winget install JRSoftware.InnoSetup)" }
    Invoke-Checked "iscc" { & $Iscc /Qp installer\station.iss }
    Get-ChildItem dist\station-*-setup.exe | ForEach-Object {
        Write-Host ("build.ps1: installer {0} ({1:N0} MB)" -f $_.Name, ($_.Length / 1MB))
    }
}
