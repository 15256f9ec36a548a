# Evaluates the flake's outputs against a small stand-in for nixpkgs, so that
# a machine without nixpkgs still catches a misspelt attribute, a missing
# argument or a broken interpolation in flake.nix:
#
#   nix-instantiate --eval --strict nix/eval-check.nix
#
# The stand-in builds nothing: each package is an attribute set with an
# out path. What nixpkgs itself does with the arguments is not checked here.
let
  flake = import ../flake.nix;
  systems = [ "x86_64-linux" "aarch64-linux" ];
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  drv = name: attrs: attrs // {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    overrideAttrs = f: drv "${name}-override" (attrs // f attrs);
  };
  # Every argument name a function of the stand-in takes: a misspelt one
  # (`cargoBuildFlag`, `nativeBuildInput`) is an error here, as it is a
  # silent no-op or an error in nixpkgs.
  only = what: allowed: args:
    let unknown = builtins.filter (n: !(builtins.elem n allowed)) (builtins.attrNames args);
    in unknown == [ ] || builtins.throw "${what}: unknown argument(s) ${builtins.concatStringsSep ", " unknown}";
  lib = {
    inherit genAttrs;
    fileset = {
      unions = paths: assert builtins.all (p: builtins.isPath p && builtins.pathExists p) paths; paths;
      toSource = args:
        assert only "lib.fileset.toSource" [ "root" "fileset" ] args;
        assert builtins.isPath args.root;
        toString args.root;
    };
    licenses.asl20 = { spdxId = "Apache-2.0"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
    assertMsg = pred: msg: pred || builtins.throw msg;
    versionAtLeast = a: b: builtins.compareVersions a b >= 0;
  };
  pkgsFor = system: {
    inherit lib;
    stdenv.hostPlatform.system = system;
    rustc = drv "rustc" { version = "1.95.0"; };
    rustPlatform.buildRustPackage = args:
      assert only "buildRustPackage" [
        "pname" "version" "src" "cargoLock" "cargoBuildFlags" "cargoTestFlags" "preBuild"
        "nativeBuildInputs" "buildInputs" "postInstall" "meta"
      ] args;
      assert builtins.isPath args.cargoLock.lockFile;
      assert builtins.pathExists args.cargoLock.lockFile;
      assert builtins.isString args.version;
      assert only "meta" [ "description" "mainProgram" "license" "platforms" ] args.meta;
      drv args.pname (args // { nativeBuildInputs = args.nativeBuildInputs or [ ]; });
    testers.runNixOSTest = args:
      assert only "runNixOSTest" [ "name" "nodes" "testScript" ] args;
      assert builtins.isString args.testScript;
      assert builtins.isFunction args.nodes.machine;
      drv args.name args;
    writeShellApplication = { name, runtimeInputs, text }:
      assert builtins.isString text;
      drv name { inherit runtimeInputs text; };
    mkShell = args: drv "shell" args;
    runCommand = name: env: script: assert builtins.isString script; drv name env;
  } // genAttrs [
    "apacheKafka" "postgresql_17" "k6" "cmake" "pkg-config" "makeWrapper" "openssl" "zlib"
    "cargo" "clippy" "rustfmt" "installShellFiles" "rust-analyzer" "shellcheck" "chromium"
    "nix" "nixfmt"
  ] (name: drv name { });
  nixpkgs = { inherit lib; legacyPackages = genAttrs systems pkgsFor; };
  self = outputs // { outPath = toString ../.; };
  outputs = flake.outputs { inherit self nixpkgs; };
  hasSuffix = suffix: s:
    let n = builtins.stringLength s; m = builtins.stringLength suffix;
    in n >= m && builtins.substring (n - m) m s == suffix;
  check = system:
    let
      apps = outputs.apps.${system};
      package = outputs.packages.${system}.default;
    in
    assert package.pname == "faultline";
    assert package.meta.mainProgram == "faultline";
    assert builtins.isString package.postInstall;
    assert builtins.all (a: apps.${a}.type == "app") [ "default" "experiment" "sweep" "stack" "faultline" ];
    assert hasSuffix "/bin/faultline-experiment" apps.experiment.program;
    assert hasSuffix "/bin/faultline-sweep" apps.sweep.program;
    assert apps.default.program == apps.experiment.program;
    assert builtins.isAttrs outputs.devShells.${system}.default;
    assert builtins.all (c: builtins.isAttrs outputs.checks.${system}.${c}) [ "build" "fmt" "clippy" "vm" ];
    assert outputs.formatter.${system}.type == "derivation";
    assert package.version == (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;
    assert builtins.isString package.preBuild;
    assert builtins.isString outputs.checks.${system}.clippy.buildPhase;
    {
      inherit (package) name postInstall;
      programs = map (a: apps.${a}.program) [ "default" "experiment" "sweep" "stack" "faultline" ];
      # The scripts, for shellcheck (writeShellApplication runs it too).
      scripts = map (p: outputs.packages.${system}.${p}.text) [ "experiment" "stack" "sweep" ];
      checks = builtins.attrNames outputs.checks.${system};
    };
in
genAttrs systems check
