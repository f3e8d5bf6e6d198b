; Inno Setup 6 script for the HemaLens Windows installer. UNTESTED on this project's Linux machine:
; it is built by the "windows" job of .github/workflows/package.yml on a hosted runner.
;
; Inputs (relative to this file): ..\..\dist\hemalens\ (PyInstaller one-folder build from build.spec,
; with HemaLens.exe and hemalens-cli.exe) and, optionally, ..\..\build\vc_redist.x64.exe (Microsoft's
; Visual C++ 2015-2022 redistributable, downloaded by the workflow).
; Build:  iscc /DAppVersion=0.1.0 packaging\windows\hemalens.iss   -> dist\HemaLens-0.1.0-setup.exe
;
; MSVC runtime: build.spec already copies the build machine's msvcp140/vcruntime140 DLLs next to the
; executables (so onnxruntime does not pick up the older copy that Qt ships). When the installer runs
; with administrator rights and the system runtime is missing or old, it also installs the redistributable.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "HemaLens"
#define AppExe "HemaLens.exe"
#define DistDir "..\..\dist\hemalens"

[Setup]
AppId={{6F2B6C0E-3B1D-4C55-9D0A-5E8A1C7B2F41}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=HemaLens maintainers
AppComments=Local, explainable AI review of blood-smear images. Research use only, not a diagnosis.
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user install without administrator rights is allowed (lab workstations are often locked down).
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=HemaLens-{#AppVersion}-setup
SetupIconFile=..\..\assets\icons\hemalens.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/normal
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\..\build\vc_redist.x64.exe"; DestDir: "{tmp}"; Flags: deleteafterinstall skipifsourcedoesntexist

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; "Open with HemaLens" for the image types the app reads (HKA = per-user or machine, as installed).
Root: HKA; Subkey: "Software\Classes\HemaLens.Image"; ValueType: string; ValueName: ""; ValueData: "Image (HemaLens)"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\HemaLens.Image\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\{#AppExe},0"
Root: HKA; Subkey: "Software\Classes\HemaLens.Image\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".png"; ValueData: ""; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".jpg"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".jpeg"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".tif"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".tiff"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".bmp"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".webp"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\SupportedTypes"; ValueType: string; ValueName: ".gif"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\.png\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.jpg\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.jpeg\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.tif\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.tiff\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.bmp\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.webp\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.gif\OpenWithProgids"; ValueType: string; ValueName: "HemaLens.Image"; ValueData: ""; Flags: uninsdeletevalue

[Run]
Filename: "{tmp}\vc_redist.x64.exe"; Parameters: "/install /quiet /norestart"; StatusMsg: "Installing the Microsoft Visual C++ runtime..."; Check: VCRedistNeeded; Flags: waituntilterminated
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
{ The redistributable can only be installed with administrator rights, only when it was bundled, and
  only helps when the machine's runtime is missing or older than 14.40 (VS 2022 17.10, which current
  onnxruntime wheels are built with). The app-local DLLs from build.spec cover every other case. }
function VCRedistNeeded: Boolean;
var
  Installed, Major, Minor: Cardinal;
begin
  Result := False;
  if not IsAdminInstallMode then Exit;
  if not FileExists(ExpandConstant('{tmp}\vc_redist.x64.exe')) then Exit;
  if not RegQueryDWordValue(HKLM64, 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64', 'Installed', Installed) then
  begin
    Result := True;
    Exit;
  end;
  if (Installed <> 1)
     or not RegQueryDWordValue(HKLM64, 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64', 'Major', Major)
     or not RegQueryDWordValue(HKLM64, 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64', 'Minor', Minor) then
  begin
    Result := True;
    Exit;
  end;
  Result := (Major < 14) or ((Major = 14) and (Minor < 40));
end;
