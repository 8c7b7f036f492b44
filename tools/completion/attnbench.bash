# Bash completion for attnbench: commands, options, suite names (--suite, --axis SUITE.),
# method names (--method), plan presets (--model, --gpu) and schedulers (--scheduler). Names come from the binary itself
# (`attnbench list ... --format names`), so they follow the registries. Installed by `cmake
# --install` and the .deb into share/bash-completion/completions; or: source
# tools/completion/attnbench.bash
_attnbench() {
  local cur prev cmd
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  cmd=${COMP_WORDS[1]}
  local bin=${COMP_WORDS[0]}
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "list run report compare merge plan plan-sweep --help --version" -- "$cur"))
    return
  fi
  case $prev in
    --suite) COMPREPLY=($(compgen -W "$("$bin" list suites --format names 2>/dev/null)" -- "$cur")); return ;;
    --method) COMPREPLY=($(compgen -W "$("$bin" list methods --format names 2>/dev/null)" -- "$cur")); return ;;
    --model) COMPREPLY=($(compgen -f -W "$("$bin" list models --format names 2>/dev/null)" -- "$cur")); return ;;
    --gpu) COMPREPLY=($(compgen -f -W "$("$bin" list gpus --format names 2>/dev/null)" -- "$cur")); return ;;
    --budget) COMPREPLY=($(compgen -W "vllm:0.9 trtllm-free:0.9 sglang:0.88 bytes:" -- "$cur")); return ;;
    --backend) COMPREPLY=($(compgen -W "cpu cuda" -- "$cur")); return ;;
    --mode) COMPREPLY=($(compgen -W "query_aware query_agnostic" -- "$cur")); return ;;
    --shape) COMPREPLY=($(compgen -W "small llama3-8b" -- "$cur")); return ;;
    --needle) COMPREPLY=($(compgen -W "number word uuid" -- "$cur")); return ;;
    --haystack) COMPREPLY=($(compgen -W "noise essay needle" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "text md json names csv html" -- "$cur")); return ;;
    --axis) COMPREPLY=($(compgen -S . -W "$("$bin" list suites --format names 2>/dev/null)" -- "$cur")); compopt -o nospace; return ;;
    --out|-o|--config|--trace|--manifest|--shard-costs) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --resume) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --shard) COMPREPLY=($(compgen -W "auto 0/" -- "$cur")); compopt -o nospace; return ;;
    --scheduler) COMPREPLY=($(compgen -W "slurm k8s mpi" -- "$cur")); return ;;
  esac
  case $cmd in
    list) COMPREPLY=($(compgen -W "methods suites models gpus --backend --format --help" -- "$cur")) ;;
    run) COMPREPLY=($(compgen -W "--suite --method --lengths --depths --samples --seed --threads --backend --mode --filter --shape --needle --haystack --tasks --budgets --trace --axis --param --workload --out --config --resume --overwrite --shard --shard-count --shard-costs --manifest --verbose --help" -- "$cur")) ;;
    plan-sweep) COMPREPLY=($(compgen -W "--shards --scheduler --out --suite --method --lengths --depths --samples --seed --backend --mode --filter --shape --needle --haystack --tasks --budgets --trace --axis --param --workload --config --shard-costs --help" -- "$cur")) ;;
    report) COMPREPLY=($(compgen -f -W "--format -o --title --help" -- "$cur")) ;;
    compare) COMPREPLY=($(compgen -f -W "--threshold --accuracy-threshold --alpha --fail-on-regression --format -o --help" -- "$cur")) ;;
    merge) COMPREPLY=($(compgen -f -W "-o --allow-partial --help" -- "$cur")) ;;
    plan) COMPREPLY=($(compgen -W "--model --gpu --method --dtype --kv-dtype --context --batch --tp --budget --page --output-tokens --max-batched-tokens --slo-tpot-ms --calibration --confirm --validate --out --help" -- "$cur")) ;;
  esac
}
complete -F _attnbench attnbench
