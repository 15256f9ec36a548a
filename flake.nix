{
  description = "faultline: a benchmark lab for what infrastructure failures do to users, data and revenue";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      runtimeTools = pkgs: [ pkgs.apacheKafka pkgs.postgresql_17 pkgs.k6 ];
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
      # The workspace's version and rust-version (Cargo.lock needs it: sysinfo 0.39).
      version = cargoToml.workspace.package.version;
      rustVersion = cargoToml.workspace.package.rust-version;
      checkRust = pkgs: pkgs.lib.assertMsg (pkgs.lib.versionAtLeast pkgs.rustc.version rustVersion)
        "faultline needs rustc >= ${rustVersion}; this nixpkgs has ${pkgs.rustc.version}";
    in
    {
      packages = forAll (pkgs: {
        default = assert checkRust pkgs; pkgs.rustPlatform.buildRustPackage {
          pname = "faultline";
          inherit version;
          # What the build reads: editing the README or a Nix file rebuilds nothing.
          src = pkgs.lib.fileset.toSource {
            root = ./.;
            fileset = pkgs.lib.fileset.unions [
              ./Cargo.toml
              ./Cargo.lock
              ./lab
              ./services
              ./experiments
              ./docs
            ];
          };
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "--workspace" ];
          # rdkafka builds its bundled librdkafka with its own ./configure,
          # whose scripts start with #!/usr/bin/env bash: the sandbox has no
          # /usr/bin/env, so their shebangs are patched in the vendored copy.
          preBuild = ''
            for dir in $(find "$cargoDepsCopy" -maxdepth 2 -type d -name 'rdkafka-sys-*'); do
              patchShebangs "$dir"
            done
          '';
          nativeBuildInputs = [ pkgs.pkg-config pkgs.makeWrapper pkgs.installShellFiles ];
          buildInputs = [ pkgs.openssl pkgs.zlib ];
          # The integration tests need a real PostgreSQL and broker, which the
          # build sandbox cannot run; the unit tests run.
          cargoTestFlags = [ "--workspace" "--lib" "--bins" ];
          postInstall = ''
            mkdir -p $out/share/faultline
            cp -r experiments docs $out/share/faultline/
            cp -r lab/templates $out/share/faultline/templates
            $out/bin/faultline man > faultline.1
            installManPage faultline.1
            installShellCompletion --cmd faultline \
              --bash <($out/bin/faultline completions bash) \
              --fish <($out/bin/faultline completions fish) \
              --zsh <($out/bin/faultline completions zsh)
            wrapProgram $out/bin/faultline \
              --prefix PATH : ${pkgs.lib.makeBinPath (runtimeTools pkgs)}:$out/bin
          '';
          meta = {
            description = "A benchmark lab for what infrastructure failures do to users, data and revenue";
            mainProgram = "faultline";
            license = pkgs.lib.licenses.asl20;
            platforms = pkgs.lib.platforms.linux;
          };
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
          # Everything the README's test command (scripts/test) calls.
          packages = runtimeTools pkgs ++ [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.shellcheck
            pkgs.chromium
            pkgs.nix
          ];
        };
      });

      formatter = forAll (pkgs: pkgs.nixfmt);

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
        # The quick scenario end to end in a NixOS VM: the lab brings up its
        # own PostgreSQL 17 and Apache Kafka (KRaft) from the package's PATH,
        # as `nix run` does, and writes a report. (PostgreSQL will not run as
        # root, so the run is a user's.) Modelled on nixosTests.kafka.
        vm = pkgs.testers.runNixOSTest {
          name = "faultline-quick-scenario";
          nodes.machine = { ... }: {
            virtualisation.memorySize = 4096;
            virtualisation.cores = 2;
            virtualisation.diskSize = 4096;
            users.users.lab.isNormalUser = true;
            environment.systemPackages = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          };
          testScript = ''
            machine.wait_for_unit("multi-user.target")
            machine.succeed(
                "su - lab -c 'faultline run "
                "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/share/faultline/experiments/db-crash-quick.toml "
                "--out /home/lab/reports --quiet; test $? -eq 0 -o $? -eq 3'"
            )
            machine.succeed("test -s /home/lab/reports/index.html")
            machine.succeed("ls /home/lab/reports/*/report.html")
            # `auto` chose Apache Kafka, which the package puts on PATH.
            machine.succeed("grep -q '\"broker\": \"kafka ' /home/lab/reports/*/manifest.json")
          '';
        };
        fmt = pkgs.runCommand "faultline-fmt" { nativeBuildInputs = [ pkgs.cargo pkgs.rustfmt ]; } ''
          cp -r ${self} src && chmod -R u+w src && cd src
          cargo fmt --all --check
          touch $out
        '';
      });
    };
}
