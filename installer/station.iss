; Inno Setup 6 script: a Windows installer for the one-folder bundle in dist\station\.
;
; Build the bundle first (installer\build.ps1), then:  iscc installer\station.iss
; (build.ps1 -Installer does both.) The version comes from station.exe's version resource, which
; the PyInstaller spec writes from the package version; pass /DAppVersion=X.Y.Z to override.
;
; Installs per user without administrator rights (%LOCALAPPDATA%\Programs\Station); an
; administrator may choose "all users" in the first dialog (then C:\Program Files\Station).

#define AppName "Station"
#define Here AddBackslash(SourcePath)
#define Bundle Here + "..\dist\station"
#ifndef AppVersion
  #define AppVersion GetStringFileInfo(Bundle + "\station.exe", "ProductVersion")
#endif
#if AppVersion == ""
  #error dist\station\station.exe is missing or has no version: run installer\build.ps1 first
#endif
; Windows wants four numbers in file properties; the spec writes them into the exe as well
#define NumericVersion GetVersionNumbersString(Bundle + "\station.exe")

[Setup]
; AppId identifies the product for upgrades and uninstall: never change it
AppId={{E83A10F3-E151-4B0F-B6EC-E8FF5EEF7FE7}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=station
VersionInfoVersion={#NumericVersion}
VersionInfoDescription={#AppName} {#AppVersion} setup
; per-user install, no UAC prompt; {autopf} is %LOCALAPPDATA%\Programs for a per-user install
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
UsedUserAreasWarning=no
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#Here}..\dist
OutputBaseFilename=station-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\station-gui.exe
UninstallDisplayName={#AppName} {#AppVersion}
; a running station holds its DLLs open: ask to close it before files are replaced
CloseApplications=yes
; the icon the spec made from resources\gui\icons\station.png for station.exe
#if FileExists(Here + "..\build\pyinstaller\station.ico")
SetupIconFile={#Here}..\build\pyinstaller\station.ico
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; an upgrade replaces the whole bundle: files of the old version must not mix with the new
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; the window, without a console behind it
Name: "{autoprograms}\{#AppName}\{#AppName}"; Filename: "{app}\station-gui.exe"; WorkingDir: "{userdocs}"
Name: "{autoprograms}\{#AppName}\{#AppName} demo (simulated devices)"; Filename: "{app}\station-gui.exe"; Parameters: "--demo"; WorkingDir: "{userdocs}"
; the headless installation check, in a console window that stays open to be read (run from
; {app}, so cmd finds station.exe without quoting a path that may contain spaces)
Name: "{autoprograms}\{#AppName}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k station.exe --self-test --self-test-port sim"; WorkingDir: "{app}"
Name: "{autoprograms}\{#AppName}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\station-gui.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Run]
Filename: "{app}\station-gui.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
