; A tc classifier that lets every packet pass (returns TC_ACT_UNSPEC, -1) and touches nothing:
; a BPF program zcdoctor cannot judge, which the kernel's count then proves harmless. This host
; has llc but no clang, so it is LLVM IR: llc -march=bpf -filetype=obj -o tc_pass.o tc_pass.ll;
; tc filter add dev DEV egress bpf da obj tc_pass.o sec tc (tests/path/tc.rs).
target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"

@_license = global [4 x i8] c"GPL\00", section "license", align 1

define dso_local i32 @zcd_pass(i8* nocapture readnone %skb) #0 section "tc" {
entry:
  ret i32 -1
}

attributes #0 = { nounwind }
