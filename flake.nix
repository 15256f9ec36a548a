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
      # The reference docs the package installs (not the example runs).
      docs = nixpkgs.lib.fileset.toSource {
        root = ./docs;
        fileset = nixpkgs.lib.fileset.unions [
          ./docs/scenarios.md
          ./docs/summary.schema.json
          ./docs/benchmarks.md
          ./docs/kafka-cluster.md
        ];
      };
      checkRust = pkgs: pkgs.lib.assertMsg (pkgs.lib.versionAtLeast pkgs.rustc.version rustVersion)
        "faultline needs rustc >= ${rustVersion}; this nixpkgs has ${pkgs.rustc.version}";
    in
    {
      packages = forAll (pkgs: {
        default = assert checkRust pkgs; pkgs.rustPlatform.buildRustPackage {
          pname = "faultline";
          inherit version;
          # What the build reads: editing the README, a Nix file, an example
          # or an example run (docs/example-*) rebuilds nothing.
          src = pkgs.lib.fileset.toSource {
            root = ./.;
            fileset = pkgs.lib.fileset.unions [
              ./Cargo.toml
              ./Cargo.lock
              ./lab
              ./services
              ./experiments
            ];
          };
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "--workspace" ];
          # rdkafka builds its bundled librdkafka with its own ./configure,
          # whose scripts start with #!/usr/bin/env bash: the sandbox has no
          # /usr/bin/env, so their shebangs are patched in the vendored copy.
          # In postPatch: cargoSetupHook's own post-patch hook, which runs
          # after this one, unsets $cargoDepsCopy. Exactly one copy, or the
          # build stops here rather than in configure.
          postPatch = ''
            rdkafka=$(find "''${cargoDepsCopy:?cargoSetupHook did not set cargoDepsCopy}" \
              -maxdepth 2 -type d -name 'rdkafka-sys-*')
            if [ -z "$rdkafka" ] || [ "$(printf '%s\n' "$rdkafka" | wc -l)" != 1 ]; then
              echo "expected one vendored rdkafka-sys in $cargoDepsCopy, found: ''${rdkafka:-none}" >&2
              exit 1
            fi
            patchShebangs "$rdkafka"
          '';
          nativeBuildInputs = [ pkgs.pkg-config pkgs.makeWrapper pkgs.installShellFiles ];
          # zstd for zstd-sys, which links a system zstd when cargoSetupHook
          # exports ZSTD_SYS_USE_PKG_CONFIG (and builds its own otherwise).
          buildInputs = [ pkgs.openssl pkgs.zlib pkgs.zstd ];
          # The integration tests need a real PostgreSQL and broker, which the
          # build sandbox cannot run; the unit tests run.
          cargoTestFlags = [ "--workspace" "--lib" "--bins" ];
          postInstall = ''
            mkdir -p $out/share/faultline
            cp -r experiments $out/share/faultline/
            cp -r ${docs} $out/share/faultline/docs
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

        # `nix run .#observe PROMETHEUS_CONFIG`: Prometheus with the
        # configuration `faultline run --dashboard --prometheus-config` (or
        # `stack up --prometheus-config`) wrote, and Grafana with the faultline
        # dashboard provisioned (scripts/observe, with observe/ from the store).
        observe = pkgs.writeShellApplication {
          name = "faultline-observe";
          runtimeInputs = [ pkgs.prometheus pkgs.grafana ];
          text = ''
            export FAULTLINE_OBSERVE_DIR=${./observe}
            exec "$BASH" ${./scripts/observe} "$@"
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
          app = package: name: description: {
            type = "app";
            program = "${package}/bin/${name}";
            meta = { inherit description; };
          };
          experiment = app packages.experiment "faultline-experiment"
            "Run a scenario (the default one unless named) and write its report to ./reports";
        in
        {
          default = experiment;
          inherit experiment;
          sweep = app packages.sweep "faultline-sweep"
            "Run a scenario over a grid of values (the outage-length sweep unless named)";
          stack = app packages.stack "faultline-stack-up"
            "Bring the stack up without load and print every URL";
          observe = app packages.observe "faultline-observe"
            "Prometheus and Grafana on a run's or a stack's series (a configuration faultline wrote)";
          faultline = app packages.default "faultline" "The faultline command line";
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
            # What scripts/setup would otherwise install from a wheel.
          ] ++ pkgs.lib.optional (pkgs ? tansu) pkgs.tansu
          ++ pkgs.lib.optional (pkgs ? nodejs) pkgs.nodejs;
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
            machine.succeed("grep -q '\"broker\": \"Apache Kafka ' /home/lab/reports/*/manifest.json")
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
