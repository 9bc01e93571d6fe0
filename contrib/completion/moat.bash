# bash completion for moat (installed as share/bash-completion/completions/moat).
# Options come from `moat SUBCOMMAND --help` itself, so they always match the binary.
_moat() {
  local cur prev words cword
  _init_completion 2>/dev/null || { cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
  local subs="run attach serve policy ca stats"
  if [[ $cword -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$subs --help --version" -- "$cur"))
    return
  fi
  local sub="${words[1]}" help_args=("${words[1]}")
  if [[ $sub == policy || $sub == ca ]]; then
    if [[ $cword -eq 2 ]]; then
      [[ $sub == policy ]] && COMPREPLY=($(compgen -W "check explain" -- "$cur"))
      [[ $sub == ca ]] && COMPREPLY=($(compgen -W "init show path" -- "$cur"))
      return
    fi
    help_args+=("${words[2]}")
  fi
  # After `moat run ... --` (or run's command), complete the command like a shell would.
  if [[ $sub == run ]]; then
    local i
    for ((i = 2; i < cword; i++)); do
      if [[ ${words[i]} == -- ]]; then _command_offset $((i + 1)) 2>/dev/null; return; fi
    done
  fi
  case "$prev" in
    --config|-c|--pcap|--audit|--pid-file|--ready-file|--tls-ca-cert|--tls-ca-key|--tls-extra-ca|--tls-keylog|--dns-block-file|--control)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --netns) COMPREPLY=($(compgen -f -- "${cur:-/run/netns/}")); return ;;
  esac
  if [[ $cur == -* ]]; then
    local opts
    opts="$("${words[0]}" "${help_args[@]}" --help 2>/dev/null | grep -oE '(^|[ ,])--?[A-Za-z0-9][A-Za-z0-9-]*' | tr -d ' ,')"
    COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
  fi
}
complete -F _moat moat
