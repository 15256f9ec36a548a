{
  description = "faultline: a benchmark lab for what infrastructure failures do to users, data and revenue";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      runtimeTools = pkgs: [ pkgs.apacheKafka pkgs.postgresql_17 pkgs.k6 ];
      # Cargo.toml's rust-version; Cargo.lock needs it (sysinfo 0.39).
      rustVersion = "1.95";
      checkRust = pkgs: pkgs.lib.assertMsg (pkgs.lib.versionAtLeast pkgs.rustc.version rustVersion)
        "faultline needs rustc >= ${rustVersion}; this nixpkgs has ${pkgs.rustc.version}";
    in
    {
      packages = forAll (pkgs: {
        default = assert checkRust pkgs; pkgs.rustPlatform.buildRustPackage {
          pname = "faultline";
          version = "0.1.0";
          src = self;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "--workspace" ];
          # rdkafka builds its bundled librdkafka.
          nativeBuildInputs = [ pkgs.cmake pkgs.pkg-config pkgs.makeWrapper ];
          buildInputs = [ pkgs.openssl pkgs.zlib ];
          dontUseCmakeConfigure = true;
          # The integration tests need a real PostgreSQL and broker, which the
          # build sandbox cannot run; the unit tests run.
          cargoTestFlags = [ "--workspace" "--lib" "--bins" ];
          postInstall = ''
            mkdir -p $out/share/faultline
            cp -r experiments docs $out/share/faultline/
            cp -r lab/templates $out/share/faultline/templates
            wrapProgram $out/bin/faultline \
              --prefix PATH : ${pkgs.lib.makeBinPath (runtimeTools pkgs)}:$out/bin
          '';
          meta.mainProgram = "faultline";
        };

        # `nix run .#experiment [SCENARIO] [faultline run flags...]`: the
        # default scenario unless another is given, run folders in ./reports.
        experiment = pkgs.writeShellApplication {
          name = "faultline-experiment";
          runtimeInputs = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ] ++ runtimeTools pkgs;
          text = ''
            scenario="${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/share/faultline/experiments/db-crash.toml"
            if [ $# -gt 0 ] && [ "''${1#-}" = "$1" ]; then
              scenario="$1"
              shift
            fi
            out=(--out ./reports)
            for arg in "$@"; do
              case "$arg" in --out|--out=*) out=() ;; esac
            done
            exec faultline run "$scenario" "''${out[@]}" "$@"
          '';
        };

        # `nix run .#sweep [SCENARIO] [faultline sweep flags...]`: the
        # outage-length sweep unless another is given, in ./reports.
        sweep = pkgs.writeShellApplication {
          name = "faultline-sweep";
          runtimeInputs = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ] ++ runtimeTools pkgs;
          text = ''
            scenario="${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/share/faultline/experiments/what-if-outage-length.toml"
            if [ $# -gt 0 ] && [ "''${1#-}" = "$1" ]; then
              scenario="$1"
              shift
            fi
            out=(--out ./reports)
            for arg in "$@"; do
              case "$arg" in --out|--out=*) out=() ;; esac
            done
            exec faultline sweep "$scenario" "''${out[@]}" "$@"
          '';
        };

        # `nix run .#stack`: the stack alone, to explore by hand.
        stack = pkgs.writeShellApplication {
          name = "faultline-stack-up";
          runtimeInputs = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ] ++ runtimeTools pkgs;
          text = ''exec faultline stack up "$@"'';
        };
      });

      apps = forAll (pkgs:
        let
          packages = self.packages.${pkgs.stdenv.hostPlatform.system};
          app = package: name: { type = "app"; program = "${package}/bin/${name}"; };
        in
        {
          default = app packages.experiment "faultline-experiment";
          experiment = app packages.experiment "faultline-experiment";
          sweep = app packages.sweep "faultline-sweep";
          stack = app packages.stack "faultline-stack-up";
          faultline = app packages.default "faultline";
        });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = runtimeTools pkgs ++ [ pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt ];
        };
      });

      checks = forAll (pkgs: {
        build = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        # The package's vendored dependencies, clippy instead of the build.
        clippy = self.packages.${pkgs.stdenv.hostPlatform.system}.default.overrideAttrs (old: {
          pname = "faultline-clippy";
          nativeBuildInputs = old.nativeBuildInputs ++ [ pkgs.clippy ];
          buildPhase = ''
            runHook preBuild
            cargo clippy --workspace --all-targets --offline -j $NIX_BUILD_CORES -- -D warnings
            runHook postBuild
          '';
          doCheck = false;
          installPhase = "touch $out";
          postInstall = "";
        });
        fmt = pkgs.runCommand "faultline-fmt" { nativeBuildInputs = [ pkgs.cargo pkgs.rustfmt ]; } ''
          cp -r ${self} src && chmod -R u+w src && cd src
          cargo fmt --all --check
          touch $out
        '';
      });
    };
}
